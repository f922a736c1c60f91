"""Shared fixtures: tiny locally built causal LMs and configs that load them.

Each tiny model is built once per test session (well under a second) into a temporary
directory and loads through the real `build_policy` path via `model.path`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from clinical_rlhf.config import Config

# Set before anything imports torch: idle OpenMP threads sleep instead of spinning, which keeps
# tests fast when the CPU cores are shared with other jobs (CI runners, parallel workers).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Callable[[str], Path]:
    """`tiny_model_dir("llama")` -> directory of a tiny llama (also gpt2, mistral, biogpt).

    Built on first request with the defaults of `build_tiny_model` (seed 0), then reused.
    Treat the directory as read-only: other tests share it.
    """
    from clinical_rlhf.models.tiny import build_tiny_model

    built: dict[str, Path] = {}

    def get(architecture: str) -> Path:
        if architecture not in built:
            directory = tmp_path_factory.mktemp(f"tiny-{architecture}")
            built[architecture] = build_tiny_model(architecture, directory)
        return built[architecture]

    return get


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tiny_model_dir) -> Path:
    """A tiny GPT-2 (hidden 64, 2 layers, ~500-token BPE vocabulary), saved with save_pretrained."""
    return tiny_model_dir("gpt2")


@pytest.fixture(scope="session")
def tiny_llama_dir(tiny_model_dir) -> Path:
    """A tiny Llama (hidden 64, 2 layers, grouped-query attention)."""
    return tiny_model_dir("llama")


@pytest.fixture(scope="session")
def tiny_gpt2_config(tiny_gpt2_dir) -> Config:
    """Config for the tiny GPT-2: CPU, float32, LoRA r=4 with shared value head. Derive
    variants with `clinical_rlhf.models.tiny.tiny_model_config(tiny_gpt2_dir, section={...})`."""
    from clinical_rlhf.models.tiny import tiny_model_config

    return tiny_model_config(tiny_gpt2_dir)


@pytest.fixture(scope="session")
def tiny_policy(tiny_gpt2_config):
    """A PolicyBundle on the tiny GPT-2. Session-scoped: do not train it in place; build your
    own with `build_policy(tiny_gpt2_config)` when a test changes weights."""
    from clinical_rlhf.models import build_policy

    return build_policy(tiny_gpt2_config)
