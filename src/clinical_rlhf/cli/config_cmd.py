"""`clinical-rlhf config validate|show FILE`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from clinical_rlhf.cli.common import DEFAULT_CONFIG, OverrideOption, load

config_app = typer.Typer(help="Validate a config file or print it resolved.", no_args_is_help=True)
console = Console()

FileArgument = Annotated[Path, typer.Argument(help="YAML config file.")]


@config_app.command("validate")
def validate(file: FileArgument = DEFAULT_CONFIG, overrides: OverrideOption = None) -> None:
    """Check a config file against the schema; exit 0 when valid, 2 with the reason when not."""
    load(file, overrides)
    console.print(f"{file}: valid")


@config_app.command("show")
def show(file: FileArgument = DEFAULT_CONFIG, overrides: OverrideOption = None) -> None:
    """Print the resolved config (defaults filled in, overrides applied) as YAML."""
    typer.echo(load(file, overrides).to_yaml(), nl=False)


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
