"""Whole tensors from sharded ones: what a bundle needs to save and load its trainable weights
when a data-parallel strategy (FSDP2's DTensors, `rl/sharding.py`) has cut them over ranks.

Kept here rather than in `rl/`, which builds the sharding, because `models` must not import `rl`.
"""

from __future__ import annotations

import torch
from torch.distributed.tensor import DTensor, distribute_tensor


def is_sharded(tensor: torch.Tensor) -> bool:
    return isinstance(tensor, DTensor)


def full_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """The whole tensor of a sharded one (a collective: every rank must call it), else itself."""
    return tensor.full_tensor() if is_sharded(tensor) else tensor


def shard_like(value: torch.Tensor, parameter: torch.Tensor) -> torch.Tensor:
    """`value` (a whole tensor) cut to `parameter`'s layout: this rank's shard when `parameter`
    is sharded (every rank must call it), else `value` itself."""
    if not is_sharded(parameter):
        return value
    return distribute_tensor(value.to(parameter.to_local().device), parameter.device_mesh, parameter.placements)
