"""Out-of-memory back-off, shared by the rollout, the PPO update and the DPO step.

An out-of-memory error inside a step that has not yet changed any state (no optimizer step
taken, no result kept) is answered by halving the run's micro-batch and redoing the step on
exactly the same data: the loss does not depend on how a batch is cut into micro-batches.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import torch

log = logging.getLogger(__name__)

Result = TypeVar("Result")


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA/MPS OOM, or the CPU allocator failing ("DefaultCPUAllocator: can't allocate memory")."""
    if isinstance(error, torch.OutOfMemoryError):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


class MicroBatchSize:
    """The micro-batch size of the run; halved on memory pressure, saved with checkpoints."""

    def __init__(self, size: int, on_change: Callable[[str], None] | None = None) -> None:
        if size < 1:
            raise ValueError(f"size must be at least 1, got {size}")
        self.value = size
        self.on_change = on_change or log.warning

    def halve(self, reason: str) -> None:
        """Halve, or re-raise the situation as an error when it is already 1."""
        if self.value == 1:
            raise MemoryError(f"{reason} with a micro-batch of 1; lower training.ppo.max_new_tokens, "
                              f"enable model_loading.gradient_checkpointing or quantize the model")
        self.value //= 2
        self.on_change(f"{reason}: micro-batch halved to {self.value}, retrying the step")


def back_off_on_oom(micro_batch: MicroBatchSize, reason: str, step: Callable[[], Result], *,
                    retry: bool = True, discard: Callable[[], None] | None = None) -> Result:
    """`step()`; after an out-of-memory error, `discard()` its partial work (gradients), halve the
    micro-batch and call it again, until it fits or the micro-batch is 1.

    `retry=False` re-raises instead: under FSDP and ZeRO the other ranks are inside the same
    collectives and cannot redo the step with this one alone.
    """
    while True:
        try:
            return step()
        except (torch.OutOfMemoryError, RuntimeError) as error:
            if not retry or not is_out_of_memory(error):
                raise
            if discard is not None:
                discard()
            micro_batch.halve(reason)
