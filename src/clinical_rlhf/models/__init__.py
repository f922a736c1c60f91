"""Models: the registry of medical LMs, the policy factory, the local demo model.

    from clinical_rlhf.models import build_policy, PolicyBundle, get_model_entry, list_model_entries

The registry and memory helpers import without torch; `build_policy`, `PolicyBundle`,
`ensure_demo_model` and `build_tiny_model` load torch/transformers on first access.
"""

from __future__ import annotations

import importlib

from clinical_rlhf.models.memory import PrecisionChoice, select_precision, training_bytes
from clinical_rlhf.models.registry import ModelEntry, get_model_entry, list_model_entries

_LAZY = {
    "build_policy": "clinical_rlhf.models.factory",
    "PolicyBundle": "clinical_rlhf.models.bundle",
    "ensure_demo_model": "clinical_rlhf.models.demo",
    "build_demo_model": "clinical_rlhf.models.demo",
    "build_tiny_model": "clinical_rlhf.models.tiny",
    "tiny_model_config": "clinical_rlhf.models.tiny",
}

__all__ = ["ModelEntry", "PrecisionChoice", "get_model_entry", "list_model_entries", "select_precision",
           "training_bytes", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
