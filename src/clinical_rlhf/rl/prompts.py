"""Which prompts each iteration trains on: seeded, epoch-wise shuffled, resumable, shardable.

Under several processes every rank holds the same sampler (same seed, same cursor) and keeps
its contiguous share of each global batch (`next_shard`), so the cursor, and with it a
checkpoint, means the same thing whatever the number of processes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


class PromptSampler:
    """Yields `batch_size` prompts per call, walking a fresh permutation every pass.

    The permutation of pass `e` comes from a private generator seeded with `seed + e`, so the
    sampler's whole state is one cursor (saved in checkpoints) and it never touches the global
    RNG that sampling answers draws from.
    """

    def __init__(self, prompts: Sequence[str], seed: int) -> None:
        if not prompts:
            raise ValueError("prompts must not be empty")
        self.prompts = list(prompts)
        self.seed = seed
        self.cursor = 0

    def _order(self, epoch: int) -> list[int]:
        generator = torch.Generator().manual_seed(self.seed + epoch)
        return torch.randperm(len(self.prompts), generator=generator).tolist()

    def next_batch(self, batch_size: int) -> list[str]:
        batch = []
        while len(batch) < batch_size:
            epoch, position = divmod(self.cursor, len(self.prompts))
            batch.append(self.prompts[self._order(epoch)[position]])
            self.cursor += 1
        return batch

    def next_shard(self, batch_size: int, shard: range) -> list[str]:
        """The prompts at positions `shard` of the next global batch of `batch_size` (the cursor
        moves by the whole batch, as it does for a single process)."""
        batch = self.next_batch(batch_size)
        return [batch[i] for i in shard]

    def state_dict(self) -> dict[str, int]:
        return {"cursor": self.cursor}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.cursor = int(state["cursor"])
