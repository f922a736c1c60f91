"""One seeding helper for every source of randomness the project touches."""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator

import numpy as np


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed python, numpy and torch (all CUDA devices too, when present).

    `deterministic` switches on `torch.use_deterministic_algorithms(True)`, which makes GPU
    runs repeatable at a speed cost; cuBLAS then needs CUBLAS_WORKSPACE_CONFIG set before its
    first use, so it is set here when absent.
    """
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    else:
        torch.use_deterministic_algorithms(False)


@contextlib.contextmanager
def preserved_random_state() -> Iterator[None]:
    """Run a block that seeds and sets threads for itself (a model build) without disturbing the
    caller: python, numpy and torch RNG streams (CUDA too) and torch's thread count come back as
    they were, so a run gives the same numbers whether or not something was built first."""
    import torch

    python_state, numpy_state, threads = random.getstate(), np.random.get_state(), torch.get_num_threads()
    try:
        with torch.random.fork_rng(devices=range(torch.cuda.device_count())):
            yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
        torch.set_num_threads(threads)
