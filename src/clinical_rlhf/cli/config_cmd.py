"""`clinical-rlhf config validate|show`."""

from __future__ import annotations

import typer
from rich.console import Console

from clinical_rlhf.cli.common import DEFAULT_CONFIG, ConfigOption, OverrideOption, load

config_app = typer.Typer(help="Validate a config file or print it resolved.", no_args_is_help=True)
console = Console()


@config_app.command("validate")
def validate(
    file: ConfigOption = DEFAULT_CONFIG,
    overrides: OverrideOption = None,
) -> None:
    """Check a config file against the schema; exit 0 when valid."""
    load(file, overrides)
    console.print(f"{file}: valid")


@config_app.command("show")
def show(
    file: ConfigOption = DEFAULT_CONFIG,
    overrides: OverrideOption = None,
) -> None:
    """Print the resolved config (defaults filled in, overrides applied) as YAML."""
    typer.echo(load(file, overrides).to_yaml(), nl=False)


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
