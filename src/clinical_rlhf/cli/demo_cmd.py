"""`clinical-rlhf build-demo-model`: train the tokenizer and SFT the local demo model."""

from __future__ import annotations

import os
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from clinical_rlhf.cli.common import DEFAULT_CONFIG, ConfigOption, OverrideOption, load

# `models.demo` (torch, numpy) is imported inside the command, so that `--help` and the other
# commands never load it.

console = Console()

ForceOption = Annotated[bool, typer.Option("--force", help="Rebuild even when a current model is cached.")]


def build_demo_model(config: ConfigOption = DEFAULT_CONFIG, overrides: OverrideOption = None,
                     force: ForceOption = False) -> None:
    """Train a byte-level BPE tokenizer on the clinical corpus and supervised-fine-tune the demo model."""
    # Before torch loads OpenMP: idle threads sleep instead of spinning. On a machine whose
    # cores are shared, spinning threads starve each other (measured 3.7 s/step vs 0.75 s).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from clinical_rlhf.models import demo

    cfg = load(config, overrides)
    settings = cfg.demo_model
    reason = demo.staleness(settings.cache_dir, demo.build_identity(settings))
    if reason is None and not force:
        console.print(f"demo model in {settings.cache_dir} is current (use --force to rebuild)")
        return
    console.print(f"building the demo model ({reason or 'forced'}): {settings.architecture}, "
                  f"{settings.n_layer} layers × {settings.n_embd} hidden, budget {settings.max_build_seconds} s",
                  highlight=False)
    columns = (TextColumn("SFT"), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]}"),
               TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("sft", total=None, loss="-")

        def on_step(step: int, total: int, loss: float) -> None:
            progress.update(task, completed=step, total=total, loss=f"{loss:.3f}")

        report = demo.build_demo_model(cfg, progress=on_step, on_phase=lambda text: progress.console.print(text))
    _print_report(report)


def _print_report(report) -> None:
    stopped = " (stopped early: time budget reached)" if report.stopped_early else ""
    console.print(f"built {report.directory}: {report.parameters:,} parameters, {report.steps}/"
                  f"{report.total_steps} steps in {report.seconds:.0f} s{stopped}; final SFT loss "
                  f"{report.final_loss:.3f}, held-out answer loss {report.heldout_loss:.3f}", highlight=False)
    console.print("held-out prompts, sampled answers:")
    for prompt, answer in report.samples:
        console.print(f"  [bold]Q:[/] {prompt}", highlight=False)
        console.print(f"  [bold]A:[/] {answer}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("build-demo-model")(build_demo_model)
