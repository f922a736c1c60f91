"""A training run played through the real monitoring stack, without a model.

Each iteration produces the metrics the trainer logs (namespaced keys, reward and safety-score
samples) from a seeded generator, then goes through exactly the monitoring calls the trainer
makes: drift monitor, memory monitor, tracker, Prometheus metrics, alert rules with the audit
log, and the emergency stop. `unsafe_from` forces the unsafe ratio over any threshold from
that step on; `reward_shift_from` shifts the reward distribution (PSI alert).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from clinical_rlhf.config import Config
from clinical_rlhf.errors import EmergencyStop
from clinical_rlhf.monitoring.alerts import FiredAlert, evaluate_rules, parse_rules, rule_context, strongest_action
from clinical_rlhf.monitoring.drift_monitor import DriftMonitor
from clinical_rlhf.monitoring.memory import MemoryMonitor
from clinical_rlhf.monitoring.metrics import TrainingMetrics
from clinical_rlhf.monitoring.runfiles import EVALUATION_FILE
from clinical_rlhf.monitoring.tracking import RunTracker

COMPONENTS = ("safety", "guidelines", "uncertainty", "coherence")


@dataclass
class PlayedRun:
    steps: list[int] = field(default_factory=list)
    fired: list[FiredAlert] = field(default_factory=list)
    stopped_at: int | None = None


def iteration_metrics(step: int, rng: np.random.Generator, *, unsafe: bool, shifted: bool,
                      batch: int = 32) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
    progress = min(step / 20.0, 1.0)
    safety_scores = np.clip(rng.normal(0.9 + 0.02 * progress, 0.05, size=batch), 0.0, 1.0)
    unsafe_ratio = 0.35 if unsafe else max(0.0, 0.08 - 0.05 * progress + rng.normal(0, 0.005))
    if unsafe:
        safety_scores[: int(batch * unsafe_ratio)] = 0.1
    means = {"safety": float(safety_scores.mean()), "guidelines": 0.55 + 0.2 * progress,
             "uncertainty": 0.6 + 0.05 * np.sin(step / 2), "coherence": 0.7 + 0.1 * progress}
    rewards = rng.normal(0.5 + 0.05 * progress, 0.15, size=batch) - (0.3 if shifted else 0.0)
    approx_kl = 0.02 + 0.01 * progress + (0.12 if step % 7 == 0 else 0.0)
    metrics = {
        "safety/unsafe_ratio": unsafe_ratio,
        "reward/total/mean": float(rewards.mean()),
        **{f"reward/{name}/mean": float(value) for name, value in means.items()},
        "objective/kl": 0.5 * progress + rng.normal(0, 0.01),
        "objective/kl_coef": 0.05 * (1.0 + 0.3 * np.sin(step / 3)),
        "policy/approx_kl": approx_kl,
        "policy/loss": -0.02 + rng.normal(0, 0.005),
        "value/loss": 0.3 * (1.0 - 0.7 * progress),
        "policy/grad_norm": 0.8 + rng.normal(0, 0.05),
        "policy/lr": 3e-4,
        "lagrange/multiplier": 1.0 + 0.4 * progress + (1.0 if unsafe else 0.0),
        "lagrange/cost": unsafe_ratio,
        "safety/reject_ratio": unsafe_ratio,
        "safety/vetoes/red_flag": 0.6 * unsafe_ratio,  # as rl/evaluation.veto_category_ratios names them
        "safety/vetoes/dosage": 0.4 * unsafe_ratio,
        "reward/hallucination_rate": 0.05,
        "system/micro_batch_size": 16.0,
        "time/rollout": 0.2 + rng.uniform(0, 0.05),  # the trainer's timing keys
        "time/iteration": 0.5 + rng.uniform(0, 0.1),
        "time/samples_per_second": batch / 0.5,
    }
    return metrics, rewards, safety_scores


def play_run(
    cfg: Config,
    *,
    iterations: int = 12,
    unsafe_from: int | None = None,
    reward_shift_from: int | None = None,
    rollback_at: int | None = None,
    metrics: TrainingMetrics | None = None,
    audit: object = None,
    tracker_kwargs: dict | None = None,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
    seconds_per_step: float = 0.0,
    seed: int = 0,
) -> PlayedRun:
    """Play the run; returns what happened. EmergencyStop propagates, as from the trainer."""
    rng = np.random.default_rng(seed)
    rules, context = parse_rules(cfg.monitoring.alerts), rule_context(cfg)
    drift, memory = DriftMonitor(cfg.monitoring.drift), MemoryMonitor(cfg.monitoring.memory)
    played = PlayedRun()
    run_dir = Path(cfg.run_dir)
    with RunTracker(cfg, run_dir, metrics=metrics, **(tracker_kwargs or {})) as tracker:
        tracker.log_params(cfg)
        (run_dir / EVALUATION_FILE).write_text(json.dumps({
            "before": {"unsafe_ratio": 0.09, "reward/total": 0.41, "guideline_adherence": 0.52},
            "after": {}}))
        for step in range(1, iterations + 1):
            unsafe = unsafe_from is not None and step >= unsafe_from
            shifted = reward_shift_from is not None and step >= reward_shift_from
            step_metrics, rewards, safety_scores = iteration_metrics(step, rng, unsafe=unsafe, shifted=shifted)
            step_metrics.update(drift.update(step, rewards, safety_scores))
            memory.update()
            step_metrics.update(memory.metrics())
            tracker.log_metrics(step, step_metrics)  # also sets the Prometheus series
            fired = evaluate_rules(rules, step_metrics, context=context, audit=audit, step=step)
            played.fired.extend(fired)
            played.steps.append(step)
            tracker.log_alerts(step, fired)
            if on_step is not None:
                on_step(step, step_metrics)
            if strongest_action(fired) == "emergency_stop":
                played.stopped_at = step
                tracker.log_event(step, "emergency_stop", "critical",
                                  f"unsafe ratio {step_metrics['safety/unsafe_ratio']:.2f}: training stopped")
                raise EmergencyStop(f"unsafe ratio over threshold at step {step}")
            if step == rollback_at:
                tracker.log_event(step, "rollback", "warning", "unsafe ratio rose; restored the best checkpoint",
                                  restored_step=max(step - 3, 1))
            if seconds_per_step:
                time.sleep(seconds_per_step)
        (run_dir / EVALUATION_FILE).write_text(json.dumps({
            "before": {"unsafe_ratio": 0.09, "reward/total": 0.41, "guideline_adherence": 0.52},
            "after": {"unsafe_ratio": 0.03, "reward/total": 0.63, "guideline_adherence": 0.74}}))
    return played
