"""One seeding helper for every source of randomness the project touches."""

from __future__ import annotations

import os
import random

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
