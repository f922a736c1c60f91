"""Import direction (docs/architecture in /work/shared/DESIGN.md): `models` never imports `rl`,
and code outside `models` builds models through the factory's public names only."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "clinical_rlhf"


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_models_does_not_import_rl():
    offenders = {str(path.relative_to(PACKAGE)): sorted(n for n in imported_modules(path)
                                                         if n.startswith("clinical_rlhf.rl"))
                 for path in (PACKAGE / "models").rglob("*.py")}
    assert {path: names for path, names in offenders.items() if names} == {}


def test_no_private_factory_names_outside_models():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.parent.name == "models":
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                    and isinstance(node.value, ast.Name) and node.value.id == "factory"):
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno} factory.{node.attr}")
            if isinstance(node, ast.ImportFrom) and node.module == "clinical_rlhf.models.factory":
                offenders += [f"{path.relative_to(PACKAGE)}:{node.lineno} {alias.name}" for alias in node.names
                              if alias.name.startswith("_")]
    assert offenders == []
