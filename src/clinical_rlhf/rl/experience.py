"""From a scored rollout to what the PPO update trains on: per-token rewards, advantages, returns.

Every formula lives in `losses.py`; this module only decides which one applies, in order:

1. per-token KL to the reference (k1 or k3), summed per answer for the controller;
2. reward advantages: GAE over `-beta * KL_t + score at the last token` with the critic, or
   group-normalised returns `score - beta * sum_t KL_t` over the samples of one prompt;
3. cost advantages: the veto cost (1 per unsafe answer) minus its group or batch mean — the
   cost has no critic of its own;
4. whitening of each (optional), then the Safe RLHF combination (A_r - lambda A_c) / (1 + lambda).

Under several processes each rank holds a shard of the rollout (whole prompt groups). The
per-answer and per-group steps above are local; the batch-wide ones (whitening, the batch-mean
cost baseline, the statistics) reduce over every rank, so each rank's advantages are the rows
a single process would compute on the whole batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from clinical_rlhf.config import PPOConfig
from clinical_rlhf.rl import losses
from clinical_rlhf.rl.distributed import Distributed
from clinical_rlhf.rl.rollout import Rollout


@dataclass
class Experience:
    """The tensors one PPO update consumes; rows line up with `rollout`."""

    rollout: Rollout
    advantages: Tensor
    returns: Tensor

    def __len__(self) -> int:
        return len(self.rollout)

    def select(self, index: Tensor) -> Experience:
        return Experience(self.rollout.select(index), self.advantages[index], self.returns[index])

    def without_padding_columns(self) -> Experience:
        """`Rollout.without_padding_columns`, with advantages and returns cut alike."""
        rollout = self.rollout.without_padding_columns()
        width = rollout.response_ids.shape[1]
        return Experience(rollout, self.advantages[:, :width], self.returns[:, :width])


def broadcast_over_tokens(per_answer: Tensor, mask: Tensor) -> Tensor:
    """`[N]` sequence values -> `[N, T]`, the same value on every real token."""
    return per_answer.unsqueeze(1).to(mask.dtype) * mask


def _cost_advantages(costs: Tensor, group: int, distributed: Distributed) -> Tensor:
    """`losses.sequence_baseline_advantages`; its batch-mean baseline (group of 1) is global."""
    if group > 1 or not distributed.is_distributed:
        return losses.sequence_baseline_advantages(costs, group)
    return costs - losses.masked_token_mean(costs, torch.ones_like(costs), sum_over=distributed.sum)


def _statistics(kl: Tensor, mask: Tensor, scores: Tensor, advantages: Tensor, returns: Tensor, kl_coef: float,
                distributed: Distributed) -> dict[str, float]:
    """`objective/*` statistics of the whole batch (every rank's shard)."""
    sum_over = distributed.sum
    answers = torch.ones_like(scores, dtype=kl.dtype)
    tokens = float(sum_over(mask.sum()))
    return {
        "objective/kl": losses.masked_token_mean(kl.sum(1), answers, sum_over=sum_over).item(),
        "objective/kl_per_token": losses.masked_token_mean(kl, mask, sum_over=sum_over).item(),
        "objective/kl_coef": kl_coef,
        "objective/scores": losses.masked_token_mean(scores.to(kl.dtype), answers, sum_over=sum_over).item(),
        "objective/advantage_std": (losses.masked_variance(advantages, mask, sum_over=sum_over).sqrt().item()
                                    if tokens > 1 else 0.0),
        "value/returns_mean": losses.masked_token_mean(returns, mask, sum_over=sum_over).item(),
    }


def make_experience(rollout: Rollout, scores: Tensor, costs: Tensor, *, kl_coef: float, multiplier: float | None,
                    ppo: PPOConfig, distributed: Distributed | None = None) -> tuple[Experience, dict[str, float]]:
    """Advantages and returns of a scored rollout (this rank's shard of it).

    `scores` `[N]`: scalar rewards after the missing-EOS penalty and any normalisation.
    `costs` `[N]`: 1.0 for an unsafe answer, else 0.0. `multiplier`: the Lagrange lambda, or None
    when the constraint is off. Returns the experience and `objective/*` statistics of the
    whole batch (reduced over `distributed`'s ranks; one process when None).
    """
    distributed = distributed or Distributed.single()
    mask = rollout.response_mask
    kl = losses.kl_estimate(rollout.logprobs, rollout.ref_logprobs, ppo.kl_estimator) * mask
    sequence_kl = kl.sum(1)
    group = ppo.samples_per_prompt
    if ppo.advantage_estimator == "gae":
        rewards = losses.per_token_rewards(scores, kl, mask, kl_coef)
        reward_advantages, returns = losses.gae_advantages(rewards, rollout.values, mask, ppo.gamma, ppo.lam)
    else:
        sequence_returns = scores - kl_coef * sequence_kl
        reward_advantages = broadcast_over_tokens(losses.group_advantages(sequence_returns, group), mask)
        returns = rollout.values  # critic-free: the value loss is not used
    if ppo.whiten_advantages:
        reward_advantages = losses.masked_whiten(reward_advantages, mask, sum_over=distributed.sum)
    advantages = reward_advantages
    if multiplier is not None:
        cost_advantages = broadcast_over_tokens(_cost_advantages(costs, group, distributed), mask)
        if ppo.whiten_advantages:
            cost_advantages = losses.masked_whiten(cost_advantages, mask, sum_over=distributed.sum)
        advantages = losses.constrained_advantages(reward_advantages, cost_advantages, multiplier)
    stats = _statistics(kl, mask, scores, advantages, returns, kl_coef, distributed)
    return Experience(rollout, advantages.detach(), returns.detach()), stats
