"""What a resumed run owes its records: the learning-rate schedule it continues on, and a
`resumed_from` mark wherever iterations after the checkpoint were already logged.

Schedule rule (docs/training.md, "Resuming"): a linear schedule decays from the base learning
rate to 0 at the run's total (`training.num_iterations` for PPO, `epochs x steps per epoch` for
DPO). Resuming with a different total re-stretches it: from the checkpoint's step `k` on, the
rate is `base x (1 - step / new_total)`, as if the run had been started with the new total.
The change is logged as a warning. (Without this the optimizer would continue with the rate it
saved, which is 0 at the end of a completed linear run.)

Repeated iterations: a run that crashed after iteration `m` and resumes from checkpoint `k < m`
runs `k+1..m` again. The rows already written for them stay (files are append-only) and are
superseded by a mark written at the resume: `{"resumed_from": k, ...}` in metrics.jsonl, a
`resumed_from` event in events.jsonl and the audit log. A reader drops rows of steps after `k`
that come before the mark (`monitoring.runfiles.read_metrics`, `safety.audit_current.current_records`).
"""

from __future__ import annotations

from typing import Any

import torch
import yaml

from clinical_rlhf.monitoring.runfiles import append_resume_mark


def apply_schedule(scheduler: torch.optim.lr_scheduler.LambdaLR, optimizer: torch.optim.Optimizer) -> None:
    """Set every parameter group's rate from the (re-)loaded scheduler and this run's schedule:
    `base x lambda(step)`. The optimizer's saved rate is the old schedule's."""
    rates = [base * scheduler.lr_lambdas[0](scheduler.last_epoch) for base in scheduler.base_lrs]
    for group, rate in zip(optimizer.param_groups, rates):
        group["lr"] = rate
    scheduler._last_lr = rates  # what get_last_lr() reports


def schedule_change(saved_total: int | None, total: int, step: int, base_lr: float, linear: bool,
                    unit: str) -> str | None:
    """The warning for a linear schedule re-stretched from `saved_total` to `total`, or None."""
    if not linear or saved_total is None or saved_total == total:
        return None
    before = base_lr * max(0.0, 1.0 - step / saved_total)
    after = base_lr * max(0.0, 1.0 - step / total)
    return (f"the checkpoint's run had {saved_total} {unit} in total, this one has {total}: the linear learning-rate "
            f"schedule is re-stretched to end at {total} (rate at {unit[:-1]} {step}: {before:.3g} -> {after:.3g}); "
            f"resume with the old total to keep the old schedule")


def saved_setting(config_yaml: str, *path: str) -> Any:
    """A value of the checkpoint's resolved config (`training`, `num_iterations`), or None."""
    node: Any = yaml.safe_load(config_yaml) or {}
    for part in path:
        node = node.get(part) if isinstance(node, dict) else None
    return node


def mark_resumed(run_dir, step: int, checkpoint: str, tracker, audit_record) -> None:
    """Write the `resumed_from` marks (metrics.jsonl, events.jsonl, the audit log) on rank 0."""
    append_resume_mark(run_dir, step, checkpoint)
    tracker.log_event(step, "resumed_from", "info", f"resumed from {checkpoint}: rows of later steps written before "
                                                    f"this event are superseded", checkpoint=checkpoint)
    audit_record("resumed_from", details={"iteration": step, "checkpoint": checkpoint})
