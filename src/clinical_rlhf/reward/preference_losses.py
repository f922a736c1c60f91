"""Pure tensor maths of the learned preference reward model.

Bradley-Terry (Bradley & Terry 1952) models the chance that answer i is preferred to answer j
as sigmoid(r_i - r_j); the reward model's scalar r is fitted by maximum likelihood on expert
comparisons, as in InstructGPT's reward model (Ouyang et al. 2022, eq. 1).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F


def bradley_terry_loss(chosen: Tensor, rejected: Tensor) -> tuple[Tensor, dict[str, float]]:
    """Mean negative log-likelihood of the preferences, and batch statistics.

        loss = mean_k  -log sigmoid(r_chosen[k] - r_rejected[k])

    computed as softplus(r_rejected - r_chosen), which equals it exactly and neither overflows
    nor loses precision for large margins (log(sigmoid(x)) underflows to -inf for x < -100 in
    float32). Stats: `accuracy` (share with r_chosen > r_rejected; an equal score counts half)
    and `margin` (mean r_chosen - r_rejected).
    """
    if chosen.shape != rejected.shape or chosen.dim() != 1:
        raise ValueError(f"chosen and rejected must be 1-D of one shape, got {tuple(chosen.shape)} "
                         f"and {tuple(rejected.shape)}")
    margin = chosen.float() - rejected.float()
    loss = F.softplus(-margin).mean()
    with torch.no_grad():
        stats = {"accuracy": pairwise_accuracy(chosen, rejected), "margin": margin.mean().item()}
    return loss, stats


def pairwise_accuracy(chosen: Tensor, rejected: Tensor) -> float:
    """Share of pairs ranked right; an equal score is a coin flip and counts half."""
    wins = (chosen > rejected).float() + 0.5 * (chosen == rejected).float()
    return wins.mean().item() if wins.numel() else float("nan")


def last_token_scores(values: Tensor, attention_mask: Tensor) -> Tensor:
    """[B, T] per-token head outputs -> [B], each row's value at its last real (mask 1) token.

    Works for left and right padding alike; equal to `values[b, mask[b].nonzero().max()]` row by
    row. The last token has attended to the whole prompt and answer, so its hidden state is the
    one a sequence-level score can read (the reward model's scalar head, as in InstructGPT).
    """
    positions = torch.arange(values.size(1), device=values.device)
    last = (attention_mask.long() * positions).argmax(dim=1)
    return values.gather(1, last.unsqueeze(1)).squeeze(1)
