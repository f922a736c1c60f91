"""`clinical-rlhf` (also `python main.py`): wiring only.

Each command group lives in its own module with a `register(app)` function. Every one is
imported for `--help`, so each imports what loads torch, the scientific stack or an optional
extra inside the command that needs it (docs/architecture.md; tests/foundation/test_cli_stays_light.py).
"""

from __future__ import annotations

import importlib
import os
import sys

import typer
from rich.console import Console

from clinical_rlhf import __version__
from clinical_rlhf.errors import ClinicalRLHFError

app = typer.Typer(
    name="clinical-rlhf",
    help="Safety-constrained RLHF for medical language models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

COMMAND_MODULES = (
    "config_cmd",      # config validate / show
    "models_cmd",      # list-models, plan
    "demo_cmd",        # build-demo-model
    "corpus_cmd",      # corpus export
    "safety_cmd",      # safety-demo, safety-check, safety-eval, audit verify
    "reward_cmd",      # reward-eval, reward-score
    "monitoring_cmd",  # alerts list/export, report, tracking replay
    "train_cmd",       # train
    "feedback_cmd",    # preferences build/validate, train-reward, fit-weights
    "evaluate_cmd",    # evaluate, agreement
    "safety_case_cmd", # safety-case
    "serve_cmd",       # serve, serve-key
)

for _name in COMMAND_MODULES:
    importlib.import_module(f"{__name__}.{_name}").register(app)

err_console = Console(stderr=True)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"clinical-rlhf {__version__}")
        raise typer.Exit()


@app.callback()
def _options(version: bool = typer.Option(False, "--version", callback=_show_version, is_eager=True,
                                          help="Print the version and exit.")) -> None:
    """Safety-constrained RLHF for medical language models."""


def main() -> None:
    """Entry point: run the app; a user-fixable error ends with one line and its exit code."""
    # Busy-waiting OpenMP threads cost ~5x per training step on a shared small CPU (measured in
    # the demo build: 3.7 s vs 0.75 s a step); it must be set before torch is first imported.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # Our own progress bars and log lines say what happens; the libraries' per-load weight bars
    # and MLflow's store-migration INFO lines only bury them. Either can be turned back on.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    # Standalone mode: typer reports its own usage errors (unknown command or option, bad value,
    # missing argument) in its standard form with exit code 2, and handles Exit and Ctrl-C; only
    # our errors come out of it. (Typer ships its own copy of click, so catching `click`'s
    # exception classes here would never match.)
    try:
        app(prog_name="clinical-rlhf")
    except ClinicalRLHFError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
