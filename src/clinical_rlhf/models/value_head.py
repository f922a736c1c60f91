"""The critic: a scalar value per token, read from a transformer's last hidden state.

Two layouts (`model_loading.shared_value_base`):
- shared: `ValueHead` on the policy's own last hidden state — one backbone in memory, one
  forward pass gives logits and values;
- separate: `ValueModel`, a second copy of the backbone (with its own LoRA adapter when LoRA
  is on) plus a `ValueHead`, so value-loss gradients cannot disturb the policy's features.
"""

from __future__ import annotations

import torch
from torch import nn


class ValueHead(nn.Module):
    """Linear map hidden state -> value, computed in float32.

    Zero-initialised, so every value starts at 0: before the critic has seen a reward,
    GAE's advantages are then just the (whitened) returns instead of noise from a random head.
    Float32 because the head is tiny and value regression is sensitive to rounding
    (the backbone may run in bf16 or 4 bit). DeepSpeed with `mixed_precision: bf16` casts the
    whole model, head included, to bf16 (keeping fp32 master weights); the head then follows.
    """

    def __init__(self, hidden_size: int, dropout: float = 0.0):
        super().__init__()
        if hidden_size <= 0:
            raise ValueError(f"hidden_size must be positive, got {hidden_size}")
        self.dropout = nn.Dropout(dropout)
        self.summary = nn.Linear(hidden_size, 1, dtype=torch.float32)
        nn.init.zeros_(self.summary.weight)
        nn.init.zeros_(self.summary.bias)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """[B, T, H] hidden states -> [B, T] values."""
        return self.summary(self.dropout(hidden_states.to(self.summary.weight.dtype))).squeeze(-1)


class ValueModel(nn.Module):
    """A separate critic: its own backbone (no LM head) followed by a `ValueHead`."""

    def __init__(self, backbone: nn.Module, hidden_size: int):
        super().__init__()
        self.backbone = backbone
        self.head = ValueHead(hidden_size)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                position_ids: torch.Tensor | None = None) -> torch.Tensor:
        """[B, T] token ids -> [B, T] values."""
        outputs = self.backbone(input_ids=input_ids, attention_mask=attention_mask,
                                position_ids=position_ids, use_cache=False)
        return self.head(outputs.last_hidden_state)
