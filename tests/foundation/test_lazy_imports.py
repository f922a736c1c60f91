"""Imports of the project's own modules sit at the top of each file (STYLE.md, docs/architecture.md).

A module may import one inside a function only when it is listed in LAZY_IMPORTS, with the reason:
the imported module loads torch or an optional extra, and the importing module must import
without it (the CLI's command modules for `--help` and the light commands, the modules of the
guard-only, agreement and serving paths), or the import breaks a cycle that cannot be removed
cleanly. Imports under `if TYPE_CHECKING:` and examples in docstrings are not imports.
"""

from __future__ import annotations

import ast
from pathlib import Path

import clinical_rlhf

PACKAGE = Path(clinical_rlhf.__file__).resolve().parent

_COMMAND = "so that `--help` and the light commands never load them"
LAZY_IMPORTS = {
    "cli/demo_cmd.py": f"models.demo loads torch and numpy, {_COMMAND}",
    "cli/evaluate_cmd.py": f"evaluation.agreement/runner/export load numpy, scipy and scikit-learn, the policies "
                           f"and models torch, {_COMMAND}",
    "cli/feedback_cmd.py": f"reward.reward_model_training loads torch, feedback.objective_weights numpy, {_COMMAND}",
    "cli/monitoring_cmd.py": f"clinical_rlhf.monitoring loads numpy, scipy and prometheus_client, {_COMMAND}",
    "cli/safety_case_cmd.py": f"the safety case reads checkpoints (torch), {_COMMAND}",
    "cli/serve_cmd.py": f"clinical_rlhf.serve needs the `serve` extra (fastapi, uvicorn, httpx) and checkpoints "
                        f"torch, {_COMMAND}",
    "cli/train_cmd.py": f"rl, models (torch), monitoring (numpy, scipy) and seeding (numpy), {_COMMAND}",
    "evaluation/ab.py": "rl.evaluation/losses/rollout load torch; ab is imported by evaluation.runner, which the "
                        "agreement path and the CLI import without torch",
    "evaluation/runner.py": "evaluation.policies loads torch (checkpoints, fingerprints); the agreement path and "
                            "the CLI import this module without it",
    "evaluation/judges.py": "evaluation.judge_backends needs the `serve` extra (its absence is one clear error) "
                            "and torch; the guard and holdout judges need neither",
    "reward/__init__.py": "reward.uncertainty_estimation loads torch; the rule-based reward imports without it",
    "reward/multi_objective.py": "reward.learned loads torch, only when reward.learned_model is set",
    "serve/backends/__init__.py": "the local backend loads torch; a server in front of a remote model runs "
                                  "without it",
}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _is_project_import(node: ast.Import | ast.ImportFrom) -> bool:
    if isinstance(node, ast.ImportFrom):
        return node.level > 0 or (node.module or "").split(".")[0] == "clinical_rlhf"
    return any(alias.name.split(".")[0] == "clinical_rlhf" for alias in node.names)


def lazy_project_imports(source: str) -> list[tuple[int, str]]:
    """(line, imported module) of every import of a `clinical_rlhf` module inside a function."""
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for rest in child.orelse:
                    visit(rest, in_function)
                continue
            if in_function and isinstance(child, (ast.Import, ast.ImportFrom)) and _is_project_import(child):
                names = ([child.level * "." + (child.module or "")] if isinstance(child, ast.ImportFrom)
                         else [alias.name for alias in child.names])
                found.extend((child.lineno, name) for name in names)
            visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(ast.parse(source), False)
    return found


def _package_files() -> dict[str, list[tuple[int, str]]]:
    return {path.relative_to(PACKAGE).as_posix(): lazy_project_imports(path.read_text(encoding="utf-8"))
            for path in sorted(PACKAGE.rglob("*.py"))}


def test_project_imports_inside_functions_only_where_listed():
    offending = [f"{name}:{line} imports {module}" for name, found in _package_files().items()
                 if name not in LAZY_IMPORTS for line, module in found]
    assert not offending, (
        "imports of the project's modules inside functions: " + "; ".join(offending) + ". Move each to the top of "
        "its file; if it must stay lazy (it loads torch or an optional extra and this module must import without "
        "it), add the file to LAZY_IMPORTS in tests/foundation/test_lazy_imports.py with the reason")


def test_every_listed_module_still_imports_lazily():
    found = _package_files()
    stale = [name for name in LAZY_IMPORTS if not found.get(name)]
    assert not stale, f"LAZY_IMPORTS lists modules without a lazy project import (or gone): {stale}; remove them"


def test_the_checker_sees_lazy_imports_and_ignores_the_rest():
    source = '''
"""Docstring example:

    from clinical_rlhf.models import build_policy
"""
from typing import TYPE_CHECKING

from clinical_rlhf.config import Config

if TYPE_CHECKING:
    from clinical_rlhf.models.bundle import PolicyBundle


def build(cfg):
    import torch
    from clinical_rlhf.models import build_policy
    from . import sibling

    def inner():
        import clinical_rlhf.rl.trainer

    return build_policy(cfg)


class Holder:
    async def run(self):
        from clinical_rlhf.serve import create_app
'''
    assert lazy_project_imports(source) == [(16, "clinical_rlhf.models"), (17, "."), (20, "clinical_rlhf.rl.trainer"),
                                            (27, "clinical_rlhf.serve")]
