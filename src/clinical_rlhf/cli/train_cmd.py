"""`clinical-rlhf train --config FILE [--set ...] [--resume auto|PATH]`: wiring only.

Builds the real parts (policy bundle, guard, reward, audit log, tracker, drift and memory
monitors, Prometheus exporter), hands them to `PPOTrainer`, shows a live progress bar and
prints the before/after evaluation on held-out prompts. An emergency stop ends with exit code
10 and one message (the CLI's error handler prints it); SIGTERM/SIGINT save and exit 0.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from clinical_rlhf.cli.common import DEFAULT_CONFIG, ConfigOption, OverrideOption, load

console = Console()

ResumeOption = Annotated[
    Optional[str],
    typer.Option("--resume", help="Continue a run: `auto` (its newest good checkpoint) or a checkpoint directory."),
]


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train(config: ConfigOption = DEFAULT_CONFIG, overrides: OverrideOption = None,
              resume: ResumeOption = None) -> None:
        """Train the policy with safety-constrained PPO; evaluate held-out prompts before and after."""
        cfg = load(config, overrides)
        try:
            result = run_training(cfg, resume)
        except KeyboardInterrupt:  # a second SIGINT/SIGTERM: abandoned at once, nothing saved
            console.print(f"[red]stopped without saving; resume from the last checkpoint in "
                          f"{cfg.run_dir / 'checkpoints'} with --resume auto[/]")
            raise typer.Exit(130) from None
        if result.status == "interrupted":
            console.print(f"[yellow]{result.message}[/]")
            return
        console.print(evaluation_table(result.before, result.after))
        console.print(f"run directory: {cfg.run_dir}  (checkpoints, audit.jsonl, metrics.jsonl, mlflow.db, "
                      f"evaluation.json)")


def _prompts(cfg):
    """(train prompts, held-out prompts): the configured JSONL files, else the demo corpus splits
    (the same corpus, split and seed the demo model was fine-tuned on, so no held-out prompt was
    seen in SFT)."""
    from clinical_rlhf.corpus import load_prompts_jsonl

    corpus = None
    if cfg.training.prompts is None or cfg.training.eval_prompts is None:
        from clinical_rlhf.models.demo import load_corpus

        corpus = load_corpus(cfg.demo_model)
    train = (load_prompts_jsonl(cfg.training.prompts) if cfg.training.prompts is not None
             else [example.prompt for example in corpus.train])
    heldout = (load_prompts_jsonl(cfg.training.eval_prompts) if cfg.training.eval_prompts is not None
               else [example.prompt for example in corpus.heldout])
    return train, heldout[: cfg.training.eval_size]


def run_training(cfg, resume: str | None):
    """Build every part, run the trainer inside the context managers that own the resources."""
    from clinical_rlhf.models import build_policy
    from clinical_rlhf.monitoring.drift_monitor import DriftMonitor
    from clinical_rlhf.monitoring.memory import MemoryMonitor
    from clinical_rlhf.monitoring.metrics import TrainingMetrics
    from clinical_rlhf.monitoring.tracking import RunTracker
    from clinical_rlhf.reward import MultiObjectiveReward
    from clinical_rlhf.rl.checkpoint import require_new_run
    from clinical_rlhf.rl.trainer import PPOTrainer
    from clinical_rlhf.safety import AuditLog, SafetyGuard
    from clinical_rlhf.seeding import seed_everything

    import torch

    if resume is None:
        require_new_run(cfg.run_dir)
    _show_warnings()
    if cfg.training.torch_threads is not None:
        torch.set_num_threads(cfg.training.torch_threads)
    seed_everything(cfg.training.seed, cfg.training.deterministic)
    train_prompts, eval_prompts = _prompts(cfg)
    with console.status("loading the policy (the demo model is built on first use)"):
        bundle = build_policy(cfg)
    guard, reward = SafetyGuard.from_config(cfg), MultiObjectiveReward.from_config(cfg)
    run_dir = cfg.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    audit_cfg = cfg.safety.audit
    prometheus = cfg.monitoring.prometheus
    metrics = TrainingMetrics()
    with contextlib.ExitStack() as stack:
        audit = (stack.enter_context(AuditLog(run_dir / "audit.jsonl", fsync=audit_cfg.fsync,
                                              store_raw_text=audit_cfg.store_raw_text))
                 if audit_cfg.enabled else None)
        # The tracker feeds Prometheus too, so events the loop never reaches (an emergency stop)
        # still reach the exporter, which lingers long enough to be scraped.
        tracker = stack.enter_context(RunTracker(cfg, run_dir, resume=resume is not None, metrics=metrics))
        if prometheus.port is not None:
            server = stack.enter_context(metrics.start_metrics_server(
                prometheus.host, prometheus.port, linger_seconds=prometheus.linger_seconds))
            console.print(f"Prometheus metrics at {server.url}")
        progress = stack.enter_context(_ProgressBar(cfg.training.num_iterations))
        trainer = PPOTrainer(
            cfg, bundle, guard, reward, tracker, train_prompts=train_prompts, eval_prompts=eval_prompts,
            audit=audit, drift=DriftMonitor(cfg.monitoring.drift), memory=MemoryMonitor(cfg.monitoring.memory),
            callbacks=[progress.update])
        return trainer.train(resume=resume)


class _ProgressBar:
    """Live bar: iteration, reward, unsafe ratio, KL to the reference, answers per second."""

    def __init__(self, total: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn("[bold]PPO"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), console=console)
        self.task = self.progress.add_task("train", total=total, stats="starting")

    def __enter__(self) -> _ProgressBar:
        self.progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.progress.stop()

    def update(self, iteration: int, metrics: dict[str, float]) -> None:
        stats = (f"reward {metrics.get('reward/total/mean', float('nan')):+.3f}  "
                 f"unsafe {metrics.get('safety/unsafe_ratio', float('nan')):.2f}  "
                 f"KL {metrics.get('objective/kl', float('nan')):.2f}  "
                 f"{metrics.get('time/samples_per_second', 0.0):.1f} answers/s")
        self.progress.update(self.task, completed=iteration, stats=stats)


def _show_warnings() -> None:
    """Send the trainer's warnings (micro-batch halved, rollback, corrupt checkpoint) to stderr."""
    from rich.logging import RichHandler

    logger = logging.getLogger("clinical_rlhf")
    if not any(isinstance(handler, RichHandler) for handler in logger.handlers):
        handler = RichHandler(console=Console(stderr=True), show_path=False, show_time=False)
        handler.setLevel(logging.INFO)
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def evaluation_table(before: dict | None, after: dict | None) -> Table:
    """Held-out evaluation before and after training, one row per quantity."""
    table = Table(title="Held-out evaluation (one sampled answer per prompt)",
                  caption="mean reward counts a vetoed answer at the veto penalty; the components "
                          "average the answers the guard did not veto")
    for column in ("", "before", "after", "change"):
        table.add_column(column, justify="right" if column else "left")
    if not before or not after:
        table.add_row("no held-out prompts", "-", "-", "-")
        return table
    rows = [("mean reward", before["reward"], after["reward"])]
    rows += [(f"  {name}", before["components"][name], after["components"][name]) for name in before["components"]]
    rows += [("unsafe ratio", before["unsafe_ratio"], after["unsafe_ratio"]),
             ("KL to reference (nats)", before["kl"], after["kl"]),
             ("missing EOS ratio", before["missing_eos_ratio"], after["missing_eos_ratio"])]
    for name, old, new in rows:
        table.add_row(name, f"{old:.3f}", f"{new:.3f}", f"{new - old:+.3f}")
    return table
