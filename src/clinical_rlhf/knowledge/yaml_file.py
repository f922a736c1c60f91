"""YAML parsing for the knowledge files, through libyaml when PyYAML was built with it.

The knowledge and language files are read whenever a guard, a reward or a CLI command that checks
text starts; the pure-Python parser takes about half a second for the language file alone, the C
one (same safe subset, same result) a tenth of that."""

from __future__ import annotations

from typing import Any

import yaml

_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse_yaml(text: str) -> Any:
    """`yaml.safe_load(text)`, in C where available; errors are `yaml.YAMLError` as there."""
    return yaml.load(text, Loader=_SAFE_LOADER)  # noqa: S506  (a safe loader)
