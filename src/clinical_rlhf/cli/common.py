"""Options shared by several commands, so every command spells them the same way."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from clinical_rlhf.config import load_config

ConfigOption = Annotated[
    Path,
    typer.Option("--config", "-c", help="YAML config file.", show_default=True),
]
OverrideOption = Annotated[
    Optional[list[str]],
    typer.Option("--set", help="Override a key: --set training.seed=7 (repeatable)."),
]

DEFAULT_CONFIG = Path("config/clinical_rlhf_config.yaml")


def load(config: Path, overrides: list[str] | None):
    """Load and validate the config once, at the entry point."""
    return load_config(config, overrides or [])
