"""From a scored rollout to what the PPO update trains on: per-token rewards, advantages, returns.

Every formula lives in `losses.py`; this module only decides which one applies, in order:

1. per-token KL to the reference (k1 or k3), summed per answer for the controller;
2. reward advantages: GAE over `-beta * KL_t + score at the last token` with the critic, or
   group-normalised returns `score - beta * sum_t KL_t` over the samples of one prompt;
3. cost advantages: the veto cost (1 per unsafe answer) minus its group or batch mean — the
   cost has no critic of its own;
4. whitening of each (optional), then the Safe RLHF combination (A_r - lambda A_c) / (1 + lambda).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from clinical_rlhf.config import PPOConfig
from clinical_rlhf.rl import losses
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


def make_experience(rollout: Rollout, scores: Tensor, costs: Tensor, *, kl_coef: float, multiplier: float | None,
                    ppo: PPOConfig) -> tuple[Experience, dict[str, float]]:
    """Advantages and returns of a scored rollout.

    `scores` `[N]`: scalar rewards after the missing-EOS penalty and any normalisation.
    `costs` `[N]`: 1.0 for an unsafe answer, else 0.0. `multiplier`: the Lagrange lambda, or None
    when the constraint is off. Returns the experience and `objective/*` statistics.
    """
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
        reward_advantages = losses.masked_whiten(reward_advantages, mask)
    advantages = reward_advantages
    if multiplier is not None:
        cost_advantages = broadcast_over_tokens(losses.sequence_baseline_advantages(costs, group), mask)
        if ppo.whiten_advantages:
            cost_advantages = losses.masked_whiten(cost_advantages, mask)
        advantages = losses.constrained_advantages(reward_advantages, cost_advantages, multiplier)
    stats = {
        "objective/kl": sequence_kl.mean().item(),
        "objective/kl_per_token": losses.masked_token_mean(kl, mask).item(),
        "objective/kl_coef": kl_coef,
        "objective/scores": scores.mean().item(),
        "objective/advantage_std": advantages[mask.bool()].std().item() if mask.sum() > 1 else 0.0,
        "value/returns_mean": losses.masked_token_mean(returns, mask).item(),
    }
    return Experience(rollout, advantages.detach(), returns.detach()), stats
