"""`clinical-rlhf train --config FILE [--set ...] [--resume auto|PATH]`: wiring only.

Builds the real parts (policy bundle, guard, reward, audit log, tracker, drift and memory
monitors, Prometheus exporter), hands them to `PPOTrainer`, shows a live progress bar and
prints the before/after evaluation on held-out prompts. An emergency stop ends with exit code
10 and one message (the CLI's error handler prints it); SIGTERM/SIGINT save and exit 0.

Under `accelerate launch` (docs/distributed.md) every process runs this command: rank 0 opens
the audit log, the tracker, the Prometheus exporter and the progress bar and prints the
results; the other ranks train their shard with no-op equivalents and exit silently with the
same code.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from clinical_rlhf.cli.common import DEFAULT_CONFIG, ConfigOption, OverrideOption, load
from clinical_rlhf.corpus import load_prompts_jsonl
from clinical_rlhf.errors import ClinicalRLHFError, ConfigError, EmergencyStop
from clinical_rlhf.knowledge.holdout import training_knowledge
from clinical_rlhf.reward import MultiObjectiveReward
from clinical_rlhf.safety import AuditLog, SafetyGuard
from clinical_rlhf.safety.audit_key import configured_key

# The trainer, the models, the demo corpus's builder (`rl`, `models`: torch), monitoring (numpy,
# scipy, prometheus_client) and seeding (numpy) are imported inside the command, so that `--help`
# and the other commands never load them.

console = Console()

ResumeOption = Annotated[
    Optional[str],
    typer.Option("--resume", help="Continue a run: `auto` (its newest good checkpoint) or a checkpoint directory."),
]


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train(config: ConfigOption = DEFAULT_CONFIG, overrides: OverrideOption = None,
              resume: ResumeOption = None) -> None:
        """Train the policy (constrained PPO, or DPO on expert preferences); evaluate before and after."""
        from clinical_rlhf.rl.distributed import Distributed

        cfg = load(config, overrides)
        runtime = Distributed.from_environment(cpu=cfg.model.device == "cpu")
        try:
            result = run_training(cfg, resume, runtime)
            runtime.barrier()
        except KeyboardInterrupt:  # a second SIGINT/SIGTERM: abandoned at once, nothing saved
            if runtime.is_main:
                console.print(f"[red]stopped without saving; resume from the last checkpoint in "
                              f"{cfg.run_dir / 'checkpoints'} with --resume auto[/]")
            raise typer.Exit(130) from None
        except ClinicalRLHFError as error:
            # An emergency stop is raised by every rank at the same step: the barrier keeps the
            # others alive until rank 0 has closed the audit log and the tracker (the launcher
            # stops every process once one exits with an error). Other errors may be one rank's
            # alone, where a barrier could wait forever. Rank 0 prints the message through the
            # CLI's handler; the others exit with the same code.
            if isinstance(error, EmergencyStop):
                runtime.barrier()
            if runtime.is_main:
                raise
            raise typer.Exit(error.exit_code) from None
        finally:
            runtime.close()
        if not runtime.is_main:
            return
        if result.status == "interrupted":
            console.print(f"[yellow]{result.message}[/]")
            return
        console.print(evaluation_table(result.before, result.after))
        console.print(f"run directory: {cfg.run_dir.resolve()}  (checkpoints, audit.jsonl, metrics.jsonl, "
                      f"evaluation.json, report.html)")
        if cfg.monitoring.mlflow_enabled:
            console.print(f"MLflow: experiment `{cfg.experiment_name}` in {tracking_uri(cfg)}  "
                          f"(mlflow ui --backend-store-uri {tracking_uri(cfg)})")


def tracking_uri(cfg) -> str:
    from clinical_rlhf.monitoring.mlflow_sink import default_tracking_uri

    return cfg.monitoring.tracking.uri or default_tracking_uri(cfg.training.runs_dir)


def training_prompts(cfg):
    """(train prompts, held-out prompts): the configured JSONL files, else the demo corpus splits
    (the same corpus, split and seed the demo model was fine-tuned on, so no held-out prompt was
    seen in SFT)."""
    corpus = None
    if cfg.training.prompts is None or cfg.training.eval_prompts is None:
        from clinical_rlhf.models.demo import load_corpus

        corpus = load_corpus(cfg.demo_model)
    train = (load_prompts_jsonl(cfg.training.prompts) if cfg.training.prompts is not None
             else [example.prompt for example in corpus.train])
    heldout = (load_prompts_jsonl(cfg.training.eval_prompts) if cfg.training.eval_prompts is not None
               else [example.prompt for example in corpus.heldout])
    return train, heldout[: cfg.training.eval_size]


def run_training(cfg, resume: str | None, runtime=None):
    """Build every part, run the trainer inside the context managers that own the resources.

    `runtime` (a `Distributed`; default one process): rank 0 owns the audit log, the tracker,
    the Prometheus exporter and the progress bar; the other ranks get no-op equivalents."""
    import torch

    from clinical_rlhf.models import build_policy
    from clinical_rlhf.monitoring.drift_monitor import DriftMonitor
    from clinical_rlhf.monitoring.memory import MemoryMonitor
    from clinical_rlhf.monitoring.metrics import TrainingMetrics
    from clinical_rlhf.monitoring.provenance import provenance_tags
    from clinical_rlhf.monitoring.tracking import RunTracker
    from clinical_rlhf.rl.checkpoint import require_new_run
    from clinical_rlhf.rl.distributed import Distributed, NullTracker
    from clinical_rlhf.rl.dpo import DPOTrainer, load_preference_splits
    from clinical_rlhf.rl.trainer import PPOTrainer
    from clinical_rlhf.seeding import seed_everything

    runtime = runtime or Distributed.single()
    runtime.check_supported(cfg)
    dpo = cfg.training.algorithm == "dpo"
    if dpo and runtime.is_distributed:
        raise ConfigError("training.algorithm: dpo runs in one process; start it without `accelerate launch`")
    runtime.shard(cfg.training.ppo.batch_size)  # refuse an uneven split before loading anything
    if resume is None:
        require_new_run(cfg.run_dir)
    audit_key = configured_key(cfg.safety.audit) if cfg.safety.audit.enabled else None  # a bad key fails first
    if resume is not None and cfg.safety.audit.enabled and runtime.is_main:
        with AuditLog(cfg.run_dir / "audit.jsonl", key=audit_key):  # a damaged log fails before the model loads
            pass
    _show_warnings(runtime.is_main)
    if runtime.is_main:  # which paths this run uses, before anything is written there
        console.print(f"run directory: {cfg.run_dir.resolve()}")
        if cfg.model.name == "clinical-demo" and cfg.model.path is None:
            console.print(f"demo model: {cfg.demo_model.cache_dir}")
    if cfg.training.torch_threads is not None:
        torch.set_num_threads(cfg.training.torch_threads)
    # The same seed on every rank while the model is built (identical LoRA init; the trainer
    # also broadcasts rank 0's), then the trainer moves each rank to `seed + rank`.
    seed_everything(cfg.training.seed, cfg.training.deterministic)
    with runtime.main_process_first():  # the demo model and corpus are built once, by rank 0
        train_prompts, eval_prompts = training_prompts(cfg)
        train_pairs, eval_pairs = load_preference_splits(cfg) if dpo else ((), ())  # a bad file fails before the model loads
        loading = (console.status("loading the policy (the demo model is built on first use)")
                   if runtime.is_main else contextlib.nullcontext())
        with loading:
            bundle = build_policy(cfg)
    _check_placement(bundle, runtime)
    # The training guard never sees `safety.holdout_knowledge` (kept for evaluate's holdout judge).
    guard = SafetyGuard(knowledge=training_knowledge(cfg.safety.knowledge_dir, cfg.safety.holdout_knowledge),
                        config=cfg.safety)
    reward = MultiObjectiveReward.from_config(cfg)
    run_dir = cfg.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    audit_cfg = cfg.safety.audit
    prometheus = cfg.monitoring.prometheus
    metrics = TrainingMetrics()
    with contextlib.ExitStack() as stack:
        audit, tracker, callbacks = None, NullTracker(), []
        if runtime.is_main:
            audit = (stack.enter_context(AuditLog(run_dir / "audit.jsonl", fsync=audit_cfg.fsync,
                                                  store_raw_text=audit_cfg.store_raw_text,
                                                  key=audit_key))
                     if audit_cfg.enabled else None)
            # The tracker feeds Prometheus too, so events the loop never reaches (an emergency
            # stop) still reach the exporter, which lingers long enough to be scraped.
            tracker = stack.enter_context(RunTracker(cfg, run_dir, resume=resume is not None, metrics=metrics))
            if prometheus.port is not None:
                server = stack.enter_context(metrics.start_metrics_server(
                    prometheus.host, prometheus.port, linger_seconds=prometheus.linger_seconds))
                console.print(f"Prometheus metrics at {server.url}")
            if not dpo:
                bar = stack.enter_context(_ProgressBar(cfg.training.num_iterations))
                callbacks.append(bar.update)
        if dpo:
            trainer = DPOTrainer(cfg, bundle, tracker, train_pairs=train_pairs, eval_pairs=eval_pairs, audit=audit,
                                 guard=guard, reward_fn=reward, eval_prompts=eval_prompts)
            trainer.callbacks.append(stack.enter_context(_ProgressBar(trainer.total_steps, "DPO")).update)
        else:
            trainer = PPOTrainer(
                cfg, bundle, guard, reward, tracker, train_prompts=train_prompts, eval_prompts=eval_prompts,
                audit=audit, drift=DriftMonitor(cfg.monitoring.drift), memory=MemoryMonitor(cfg.monitoring.memory),
                callbacks=callbacks, distributed=runtime)
            if runtime.is_main:
                trainer.evaluation_callbacks.append(bar.evaluating)
        if runtime.is_main:
            tracker.set_tags(provenance_tags(trainer.base_fingerprint,
                                             _data_sources(cfg, dpo, train_prompts, eval_prompts)))
        return trainer.train(resume=resume)


def _data_sources(cfg, dpo: bool, train_prompts: list[str], eval_prompts: list[str]) -> dict:
    """Input files to hash into the run's tags; prompts generated from the corpus (no file) are
    hashed as the text the run used."""
    from clinical_rlhf.rl.dpo import SHIPPED_PREFERENCES

    def text_digest(prompts: list[str]) -> str:
        return hashlib.sha256("\n".join(prompts).encode()).hexdigest()

    training = cfg.training
    sources: dict = {"prompts": training.prompts or text_digest(train_prompts),
                     "eval_prompts": training.eval_prompts or text_digest(eval_prompts)}
    if dpo:
        shipped = Path(__file__).resolve().parents[1] / "data" / "preferences"
        sources["dpo_train"] = training.dpo.train_file or shipped / SHIPPED_PREFERENCES[0]
        sources["dpo_heldout"] = training.dpo.heldout_file or shipped / SHIPPED_PREFERENCES[1]
    return sources


def _check_placement(bundle, runtime) -> None:
    """Under NCCL each rank must hold its model on its own GPU (LOCAL_RANK), not all on GPU 0.
    The placements are gathered, so every rank refuses together (none is left waiting in the
    trainer's first collective)."""
    loaded = sorted({str(parameter.device) for parameter in bundle.trainable_parameters()})
    placements = runtime.gather((str(runtime.device), loaded))
    wrong = [f"rank {rank} on {', '.join(got)} instead of {want}" for rank, (want, got) in enumerate(placements)
             if want.startswith("cuda") and got != [want]]
    if wrong:
        raise ConfigError(f"each process must load the model on its own GPU, but it landed {'; '.join(wrong)}; "
                          f"launch one process per GPU (accelerate launch --config_file config/accelerate/ddp.yaml) "
                          f"with model.device=auto")


class _ProgressBar:
    """Live bar: iteration, reward, unsafe ratio, KL to the reference, answers per second."""

    def __init__(self, total: int, label: str = "PPO") -> None:
        self.label = label
        self.progress = Progress(TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), console=console)
        # Until the first update: the held-out evaluation before training (rl/evaluation.py) runs.
        self.task = self.progress.add_task("train", total=total,
                                           stats="evaluating the policy before training on held-out prompts…")

    def __enter__(self) -> _ProgressBar:
        self.progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.progress.stop()

    def evaluating(self, which: str, done: int, total: int) -> None:
        """The held-out evaluation's count, so the bar moves before the first iteration."""
        when = "before" if which == "before" else "after"
        self.progress.update(self.task, stats=f"evaluating {when} training: {done}/{total} held-out answers…")

    def update(self, iteration: int, metrics: dict[str, float]) -> None:
        if self.label == "DPO":
            stats = (f"loss {metrics.get('dpo/loss', float('nan')):.3f}  "
                     f"margin {metrics.get('dpo/rewards/margin', float('nan')):+.3f}  "
                     f"accuracy {metrics.get('dpo/rewards/accuracy', float('nan')):.2f}  "
                     f"{metrics.get('time/pairs_per_second', 0.0):.1f} pairs/s")
            self.progress.update(self.task, completed=iteration, stats=stats)
            return
        stats = (f"reward {metrics.get('reward/total/mean', float('nan')):+.3f}  "
                 f"unsafe {metrics.get('safety/unsafe_ratio', float('nan')):.2f}  "
                 f"KL {metrics.get('objective/kl', float('nan')):.2f}  "
                 f"{metrics.get('time/samples_per_second', 0.0):.1f} answers/s")
        if iteration >= self.progress.tasks[0].total:
            stats += "  · evaluating after training…"
        self.progress.update(self.task, completed=iteration, stats=stats)


def _show_warnings(is_main: bool = True) -> None:
    """Send the trainer's warnings (micro-batch halved, rollback, corrupt checkpoint) to stderr."""
    logger = logging.getLogger("clinical_rlhf")
    if not any(isinstance(handler, RichHandler) for handler in logger.handlers):
        handler = RichHandler(console=Console(stderr=True), show_path=False, show_time=False)
        # Ranks other than 0 repeat rank 0's progress lines; their own warnings still show.
        handler.setLevel(logging.INFO if is_main else logging.WARNING)
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
    rows = []
    if "reward" in before:  # sampled answers judged by guard and reward (PPO; DPO when held-out prompts exist)
        rows += [("mean reward", before["reward"], after["reward"])]
        rows += [(f"  {name}", before["components"][name], after["components"][name]) for name in before["components"]]
        rows += [("unsafe ratio", before["unsafe_ratio"], after["unsafe_ratio"]),
                 ("KL to reference (nats)", before["kl"], after["kl"]),
                 ("missing EOS ratio", before["missing_eos_ratio"], after["missing_eos_ratio"])]
    if "preference_accuracy" in before:  # DPO: the held-out expert pairs
        rows += [("preference accuracy (held-out pairs)", before["preference_accuracy"], after["preference_accuracy"]),
                 ("preference margin (implicit reward)", before["preference_margin"], after["preference_margin"])]
    for name, old, new in rows:
        table.add_row(name, f"{old:.3f}", f"{new:.3f}", f"{new - old:+.3f}")
    return table
