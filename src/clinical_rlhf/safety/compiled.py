"""Which of the guard's modules run compiled and which run as plain Python.

`setup.py` compiles the modules in `COMPILED_MODULES` with Cython when `pip install` finds Cython
and a C compiler: the same `.py` files, compiled as they are (Cython's pure-Python mode, no
annotation turned into a C type), so the plain-Python modules stay the one source of truth and the
fallback. A compiled module is a file beside its source (`dosage.cpython-311-x86_64-linux-gnu.so`
next to `dosage.py`), which Python's import system prefers, and the build records the SHA-256 of
each source it compiled in `BUILD_RECORD`.

`use_sources_where_needed`, run when this module is imported (`clinical_rlhf.safety` imports it
before any of its other modules), sends the import of a module back to its source when

- `CLINICAL_RLHF_PURE_PYTHON=1` is set (the parity test, profiling, or ruling the build out), or
- the source is not the one compiled (edited since the build, or no record of it): a stale
  compiled module must never run in place of the code as written.

`summary()` says in one line which is running (the benchmark prints it). This module is never
compiled itself and imports only the standard library.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

COMPILED_MODULES = ("memo", "phrases", "spelling", "normalize", "offsets", "context", "redflags", "medications",
                    "dosage", "observations", "signs", "triage", "advice", "dialogue", "checks", "verdict", "reading",
                    "guard")
"""The guard's modules on the path of every check (`setup.py` reads this tuple)."""
PACKAGE = "clinical_rlhf.safety"
PURE_PYTHON_VARIABLE = "CLINICAL_RLHF_PURE_PYTHON"
"""Set to 1 to run every module as plain Python whatever was built."""
BUILD_RECORD = "_compiled.json"
"""Written by the build beside the compiled modules: {"cython": version, "sources": {module: sha256}}."""
REBUILD = "pip install -e . (or: python setup.py build_ext --inplace)"

_DIRECTORY = Path(__file__).resolve().parent
_reasons: dict[str, str] = {}
"""Module -> why it runs as plain Python, for the modules `use_sources_where_needed` sent back."""


def source_digest(path: Path) -> str:
    """SHA-256 of a module's source, as the build records it."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pure_python_requested(environ: Mapping[str, str] = os.environ) -> bool:
    return environ.get(PURE_PYTHON_VARIABLE, "").strip().lower() not in ("", "0", "false", "no")


def sources_needed(directory: Path, modules: Sequence[str], environ: Mapping[str, str] = os.environ
                   ) -> dict[str, str]:
    """Module -> why it must be imported from its source although a compiled file lies beside
    it; modules without a compiled file are left out (they load as plain Python anyway)."""
    compiled = [name for name in modules
                if any((directory / (name + suffix)).exists() for suffix in importlib.machinery.EXTENSION_SUFFIXES)]
    if not compiled:
        return {}
    if pure_python_requested(environ):
        return {name: f"{PURE_PYTHON_VARIABLE} is set" for name in compiled}
    try:
        recorded = json.loads((directory / BUILD_RECORD).read_text(encoding="utf-8")).get("sources", {})
    except (OSError, ValueError, AttributeError):
        recorded = {}
    needed = {}
    for name in compiled:
        if name not in recorded:
            needed[name] = f"no build record for it in {BUILD_RECORD}; rebuild: {REBUILD}"
        elif recorded[name] != source_digest(directory / f"{name}.py"):
            needed[name] = f"{name}.py changed since it was compiled; rebuild: {REBUILD}"
    return needed


class _SourceFinder(importlib.abc.MetaPathFinder):
    """Finds the listed modules as their `.py` files, ahead of the compiled files beside them."""

    def __init__(self, paths: dict[str, Path]) -> None:
        self.paths = paths

    def find_spec(self, fullname, path=None, target=None):
        found = self.paths.get(fullname)
        return importlib.util.spec_from_file_location(fullname, found) if found is not None else None


def use_sources_where_needed() -> None:
    """Import from source every module `sources_needed` names (once per process; logs why when
    a compiled module is stale, so that an edit is never silently shadowed by an old build)."""
    if any(isinstance(finder, _SourceFinder) for finder in sys.meta_path):
        return
    needed = sources_needed(_DIRECTORY, COMPILED_MODULES)
    _reasons.update(needed)
    if needed:
        sys.meta_path.insert(0, _SourceFinder({f"{PACKAGE}.{name}": _DIRECTORY / f"{name}.py" for name in needed}))
    for name, reason in needed.items():
        if not reason.startswith(PURE_PYTHON_VARIABLE):
            logger.warning("clinical_rlhf.safety.%s runs as plain Python: %s", name, reason)


def status() -> dict[str, str]:
    """Module -> "compiled", or why it runs as plain Python, for every module of
    `COMPILED_MODULES` (imports them)."""
    found = {}
    for name in COMPILED_MODULES:
        module = importlib.import_module(f"{PACKAGE}.{name}")
        if (getattr(module, "__file__", None) or "").endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)):
            found[name] = "compiled"
        else:
            found[name] = _reasons.get(name, f"not built; build: {REBUILD}")
    return found


def summary() -> str:
    """One line: which of the guard's modules run compiled, and why the others do not."""
    states = status()
    compiled = [name for name, state in states.items() if state == "compiled"]
    plain = {name: state for name, state in states.items() if state != "compiled"}
    if not plain:
        return f"compiled (Cython): all {len(states)} modules"
    reasons = sorted(set(plain.values()))
    if not compiled and len(reasons) == 1:
        return f"plain Python: all {len(states)} modules ({reasons[0]})"
    return (f"compiled (Cython): {len(compiled)} of {len(states)} modules; plain Python: "
            + "; ".join(f"{name} ({reason})" for name, reason in plain.items()))


use_sources_where_needed()
