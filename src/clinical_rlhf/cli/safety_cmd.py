"""Commands of this group are registered here by the package that owns them."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    pass
