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


def broadcast_over_tokens(per_answer: Tensor, mask: Tensor) -> Tensor:
    """`[N]` sequence values -> `[N, T]`, the same value on every real token."""
    return per_answer.unsqueeze(1).to(mask.dtype) * mask


def global_token_mean(values: Tensor, mask: Tensor, distributed: Distributed) -> Tensor:
    """`losses.masked_token_mean` over the real tokens of every rank's shard."""
    mask = mask.to(values.dtype)
    total, count = distributed.sum(torch.stack([(values * mask).sum(), mask.sum()]))
    return total / count.clamp(min=1.0)


def global_whiten(values: Tensor, mask: Tensor, distributed: Distributed, eps: float = 1e-8) -> Tensor:
    """`losses.masked_whiten` with the mean and (unbiased) variance of every rank's real tokens.

    Naive equivalent it must match: `losses.masked_whiten(cat(shards), cat(masks))[this shard]`.
    With one process the reductions are the identity and the arithmetic is that function's.
    """
    mask = mask.to(values.dtype)
    total, count = distributed.sum(torch.stack([(values * mask).sum(), mask.sum()]))
    mean = total / count.clamp(min=1.0)
    centred = values - mean
    squares = distributed.sum((centred.pow(2) * mask).sum())
    variance = squares / (count.clamp(min=2.0) - 1.0)
    return centred * torch.rsqrt(variance + eps) * mask


def _cost_advantages(costs: Tensor, group: int, distributed: Distributed) -> Tensor:
    """`losses.sequence_baseline_advantages`; its batch-mean baseline (group of 1) is global."""
    if group > 1 or not distributed.is_distributed:
        return losses.sequence_baseline_advantages(costs, group)
    total, count = distributed.sum(torch.stack([costs.sum(), costs.new_tensor(float(costs.numel()))]))
    return costs - total / count


def _statistics(kl: Tensor, mask: Tensor, scores: Tensor, advantages: Tensor, returns: Tensor, kl_coef: float,
                distributed: Distributed) -> dict[str, float]:
    """`objective/*` statistics of the whole batch (every rank's shard)."""
    sequences, kl_sum, score_sum = distributed.sum(torch.stack([
        kl.new_tensor(float(scores.numel())), kl.sum(), scores.sum().to(kl.dtype)]))
    real = mask.bool()
    tokens = distributed.sum(mask.sum())
    advantage_mean = distributed.sum(advantages[real].sum()) / tokens.clamp(min=1.0)
    advantage_squares = distributed.sum((advantages[real] - advantage_mean).pow(2).sum())
    return {
        "objective/kl": (kl_sum / sequences).item(),
        "objective/kl_per_token": global_token_mean(kl, mask, distributed).item(),
        "objective/kl_coef": kl_coef,
        "objective/scores": (score_sum / sequences).item(),
        "objective/advantage_std": (advantage_squares / (tokens - 1.0)).sqrt().item() if tokens > 1 else 0.0,
        "value/returns_mean": global_token_mean(returns, mask, distributed).item(),
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
        reward_advantages = global_whiten(reward_advantages, mask, distributed)
    advantages = reward_advantages
    if multiplier is not None:
        cost_advantages = broadcast_over_tokens(_cost_advantages(costs, group, distributed), mask)
        if ppo.whiten_advantages:
            cost_advantages = global_whiten(cost_advantages, mask, distributed)
        advantages = losses.constrained_advantages(reward_advantages, cost_advantages, multiplier)
    stats = _statistics(kl, mask, scores, advantages, returns, kl_coef, distributed)
    return Experience(rollout, advantages.detach(), returns.detach()), stats
