"""Optional build step: the safety guard's hot modules compiled with Cython.

Everything about the package is in pyproject.toml; this file only adds the extension modules.
`pip install -e .` (`make install`) compiles the modules listed in
`clinical_rlhf.safety.compiled.COMPILED_MODULES` from their `.py` sources (Cython's pure-Python
mode, annotations left as Python annotations) when Cython and a C compiler are present, and
records the SHA-256 of every source it compiled (`_compiled.json` beside them). Nothing here can
fail the install: without Cython, without a compiler, or when a module does not compile, the
install goes on and that module runs as plain Python. `CLINICAL_RLHF_PURE_PYTHON=1` at install
time skips the build. See docs/safety.md, "Compiled modules".
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
SAFETY = Path("src") / "clinical_rlhf" / "safety"
PACKAGE = "clinical_rlhf.safety"


def _constant(name: str):
    """A literal constant of `clinical_rlhf.safety.compiled`, read without importing the package."""
    tree = ast.parse((HERE / SAFETY / "compiled.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise LookupError(f"{SAFETY / 'compiled.py'} defines no {name}")


MODULES: tuple[str, ...] = _constant("COMPILED_MODULES")
PURE_PYTHON_VARIABLE: str = _constant("PURE_PYTHON_VARIABLE")
BUILD_RECORD: str = _constant("BUILD_RECORD")


def _say(message: str) -> None:
    print(f"clinical-rlhf: {message}", file=sys.stderr)


def _extensions() -> list[Extension]:
    """One extension per module, from its `.py` source; Cython translates them when `build_ext`
    runs (not when pip only asks for the package's metadata)."""
    if os.environ.get(PURE_PYTHON_VARIABLE, "").strip().lower() not in ("", "0", "false", "no"):
        _say(f"{PURE_PYTHON_VARIABLE} is set: the safety guard is not compiled and runs as plain Python")
        return []
    no_debug_info = ["-g0"] if os.name == "posix" else []  # ~250 kB a module instead of ~1.4 MB
    return [Extension(f"{PACKAGE}.{name}", [str(SAFETY / f"{name}.py")], extra_compile_args=no_debug_info)
            for name in MODULES]


class OptionalBuildExt(build_ext):
    """`build_ext` that translates the modules with Cython, never fails the install, and records
    what it compiled."""

    def initialize_options(self) -> None:
        super().initialize_options()
        self.compiled: list[str] = []
        self.digests: dict[str, str] = {}

    def finalize_options(self) -> None:
        # Translated before `build_ext` reads the list: it keeps facts about each extension object.
        try:
            self.distribution.ext_modules = self._translated(self.distribution.ext_modules or [])
        except Exception as exc:  # noqa: BLE001 - e.g. no Cython: plain Python is the fallback
            _say(f"the safety modules were not translated to C ({exc}); the safety guard runs as plain Python")
            self.distribution.ext_modules = []
        super().finalize_options()
        if self.parallel is None:
            self.parallel = os.cpu_count() or 1

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - e.g. no C compiler at all
            _say(f"the safety modules were not compiled ({exc}); the safety guard runs as plain Python")
        self._record()

    def _translated(self, extensions: list[Extension]) -> list[Extension]:
        """The `.py` sources to C, with the digest of each source as translated (`_record`)."""
        if not extensions:
            return []
        from Cython.Build import cythonize

        for ext in extensions:
            name = ext.name.rsplit(".", 1)[1]
            self.digests[name] = hashlib.sha256((HERE / SAFETY / f"{name}.py").read_bytes()).hexdigest()
        return cythonize(extensions, build_dir=str(Path("build") / "cython"), quiet=True,
                         nthreads=os.cpu_count() or 1,
                         compiler_directives={"language_level": 3, "annotation_typing": False})

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001 - one module failing leaves it plain Python
            _say(f"{ext.name} was not compiled ({exc}); it runs as plain Python")
            return
        self.compiled.append(ext.name)

    def _record(self) -> None:
        """`_compiled.json` beside the compiled modules: the SHA-256 of each source compiled, which
        `clinical_rlhf.safety.compiled` checks before it lets a compiled module stand in for it."""
        try:
            from Cython import __version__ as cython_version
        except ImportError:
            cython_version = None
        sources = {name: self.digests[name] for name in sorted(fullname.rsplit(".", 1)[1] for fullname in self.compiled)}
        target = Path(self.get_ext_fullpath(f"{PACKAGE}.{MODULES[0]}")).parent / BUILD_RECORD
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps({"cython": cython_version, "sources": sources}, indent=1) + "\n",
                          encoding="utf-8")
        _say(f"compiled {len(sources)} of {len(MODULES)} safety modules with Cython {cython_version}")


setup(ext_modules=_extensions(), cmdclass={"build_ext": OptionalBuildExt})
