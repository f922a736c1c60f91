"""PPO maths as pure tensor functions: KL estimators, per-token rewards, advantages, losses.

Shapes: `B` sequences (answers), `T` answer tokens. Every `[B, T]` tensor is aligned with the
answer tokens (right-padded), and `mask` is 1.0 on real answer tokens (the EOS included) and 0.0
on padding. Nothing here touches a model, an optimizer or a config object: each function takes
tensors and hyperparameters and returns tensors, so each can be checked against hand-worked
values (tests/rl/test_losses.py).

References
- PPO: Schulman et al. 2017, "Proximal Policy Optimization Algorithms", arXiv:1707.06347.
- GAE: Schulman et al. 2016, "High-Dimensional Continuous Control Using GAE", arXiv:1506.02438.
- KL penalty and adaptive beta: Ziegler et al. 2019, "Fine-Tuning Language Models from Human
  Preferences", arXiv:1909.08593.
- KL estimators k1/k3: J. Schulman, "Approximating KL Divergence" (2020 blog note).
- Group-normalised advantages: Shao et al. 2024, "DeepSeekMath" (GRPO), arXiv:2402.03300.
- Reward/cost combination: Dai et al. 2023, "Safe RLHF", arXiv:2310.12773.
- DPO: Rafailov et al. 2023, "Direct Preference Optimization", arXiv:2305.18290; IPO: Azar et al.
  2023, "A General Theoretical Paradigm to Understand Learning from Human Preferences",
  arXiv:2310.12036; conservative DPO (label smoothing): E. Mitchell, "A note on DPO with noisy
  preferences & relationship to IPO" (2023).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor

KLEstimator = Literal["k1", "k3"]
DPOLossType = Literal["sigmoid", "ipo"]


# ----------------------------------------------------------------------------- reductions


SumOverProcesses = Callable[[Tensor], Tensor]
"""Element-wise sum of a tensor over every process of a run (`Distributed.sum`); the identity
for one process. The reductions below take one to average over the whole batch when each
process holds a shard of it."""


def masked_token_mean(values: Tensor, mask: Tensor, dim: int | None = None, *,
                      sum_over: SumOverProcesses | None = None) -> Tensor:
    """Mean over the real tokens: sum(values * mask) / sum(mask).

    `dim=None` averages every real token of the batch (each token weighs the same, so long
    answers weigh more); `dim=1` gives one mean per sequence. The one masked-average helper
    of the package: losses, advantages and metrics go through it instead of ad-hoc
    `sum()/sum()`. An all-padding row or batch yields 0 rather than NaN.

    `sum_over` (with `dim=None` only): sum the numerator and the count over every process
    first (one all-reduce), so each process gets the token mean of the whole batch:
        masked_token_mean(cat(shards), cat(masks)) == masked_token_mean(shard, mask, sum_over=dist.sum)
    Under several processes the reduced sums carry no gradient (they feed statistics and
    whitening, not losses).
    """
    mask = mask.to(values.dtype)
    if dim is not None:
        if sum_over is not None:
            raise ValueError("sum_over averages the whole batch; it cannot be combined with dim")
        return (values * mask).sum(dim) / mask.sum(dim).clamp(min=1.0)
    total, count = (values * mask).sum(), mask.sum()
    if sum_over is not None:
        total, count = sum_over(torch.stack([total, count]))
    return total / count.clamp(min=1.0)


def masked_variance(values: Tensor, mask: Tensor, *, sum_over: SumOverProcesses | None = None) -> Tensor:
    """Unbiased variance over the real tokens (of every process's shard with `sum_over`):
    sum(mask * (x - token_mean)^2) / (sum(mask) - 1), the count taken as at least 2."""
    mean = masked_token_mean(values, mask, sum_over=sum_over)
    real = mask.to(values.dtype)
    squares, count = ((values - mean).pow(2) * real).sum(), real.sum()
    if sum_over is not None:
        squares, count = sum_over(torch.stack([squares, count]))
    return squares / (count.clamp(min=2.0) - 1.0)


def masked_whiten(values: Tensor, mask: Tensor, shift_mean: bool = True, eps: float = 1e-8, *,
                  sum_over: SumOverProcesses | None = None) -> Tensor:
    """(x - mean) / sqrt(var + eps) over the real tokens; padding stays 0.

    Mean and (unbiased, like TRL's `masked_whiten`) variance are taken over real tokens only;
    with `sum_over`, over the real tokens of every process's shard, so each process gets its
    rows of the whole batch whitened. `shift_mean=False` rescales without centring, which
    keeps the sign of a reward.
    """
    mean = masked_token_mean(values, mask, sum_over=sum_over)
    whitened = (values - mean) * torch.rsqrt(masked_variance(values, mask, sum_over=sum_over) + eps)
    if not shift_mean:
        whitened = whitened + mean
    return whitened * mask.to(values.dtype)


# ----------------------------------------------------------------------------- log-probs


def logprobs_of_tokens(logits: Tensor, tokens: Tensor, temperature: float = 1.0) -> Tensor:
    """log softmax(logits / T)[token] for each position, shape `[B, T]`.

    Naive equivalent it must match:
        torch.log_softmax(logits / T, dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    Computed as `logit[token] / T - logsumexp(logits / T)` one row at a time: the only
    vocabulary-sized temporaries are one row's (`[T, V]`), never a second `[B, T, V]` tensor of
    scaled logits or log-probabilities (the vocabulary of a 7B model is 32k-128k). Dividing by
    the sampling temperature makes these the log-probs of the distribution the answer was
    actually sampled from.
    """
    picked = logits.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    if temperature == 1.0:
        normaliser = torch.stack([torch.logsumexp(row, dim=-1) for row in logits])
        return picked - normaliser
    normaliser = torch.stack([torch.logsumexp(row / temperature, dim=-1) for row in logits])
    return picked / temperature - normaliser


def entropy_from_logits(logits: Tensor, temperature: float = 1.0) -> Tensor:
    """Per-position entropy H = logsumexp(l) - sum softmax(l) * l of softmax(logits / T), `[B, T]`."""
    if temperature != 1.0:
        logits = logits / temperature
    probabilities = torch.softmax(logits, dim=-1)
    return torch.logsumexp(logits, dim=-1) - (probabilities * logits).sum(-1)


# ----------------------------------------------------------------------------- KL and rewards


def kl_estimate(logp: Tensor, ref_logp: Tensor, estimator: KLEstimator = "k1") -> Tensor:
    """Per-token estimate of KL(policy || reference) from tokens sampled by the policy.

    With log r = ref_logp - logp (Schulman 2020):
        k1 = -log r = logp - ref_logp          unbiased, can be negative per token
        k3 = (r - 1) - log r                    unbiased, never negative, lower variance
    """
    log_ratio = ref_logp - logp
    if estimator == "k1":
        return -log_ratio
    if estimator == "k3":
        return torch.expm1(log_ratio) - log_ratio
    raise ValueError(f"estimator must be 'k1' or 'k3', got {estimator!r}")


def last_token_index(mask: Tensor) -> Tensor:
    """Index of the last real token of each (right-padded) row; 0 for an empty row."""
    return (mask.sum(1).long() - 1).clamp(min=0)


def per_token_rewards(scores: Tensor, kl: Tensor, mask: Tensor, kl_coef: float) -> Tensor:
    """r_t = -beta * KL_t on every answer token, plus the scalar score at the last real token.

    (Ziegler et al. 2019.) `scores` is `[B]`, `kl` and `mask` are `[B, T]`.
    """
    rewards = -kl_coef * kl * mask
    rows = torch.arange(scores.shape[0], device=scores.device)
    rewards[rows, last_token_index(mask)] += scores.to(rewards.dtype)
    return rewards


# ----------------------------------------------------------------------------- advantages


def gae_advantages(rewards: Tensor, values: Tensor, mask: Tensor, gamma: float, lam: float) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016), returns (advantages, returns).

        delta_t = r_t + gamma * V_{t+1} - V_t        (V after the last real token is 0)
        A_t     = delta_t + gamma * lam * A_{t+1}
        R_t     = A_t + V_t                          (the value target)
    Padding positions get A = R = 0.
    """
    mask = mask.to(values.dtype)
    values = values * mask
    steps = rewards.shape[1]
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(steps)):
        next_value = values[:, t + 1] if t + 1 < steps else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = (delta + gamma * lam * running) * mask[:, t]
        advantages[:, t] = running
    return advantages, (advantages + values) * mask


def group_advantages(scores: Tensor, group_size: int, eps: float = 1e-6) -> Tensor:
    """Group-normalised advantage of each answer, `[B] -> [B]` (GRPO, Shao et al. 2024).

        A_i = (s_i - mean(s_group)) / (std(s_group) + eps)
    The `group_size` answers of one prompt are contiguous in `scores`; std is the unbiased one.
    A group whose answers all score the same gets A = 0: it carries no preference.
    """
    if group_size < 2:
        raise ValueError(f"group_size must be at least 2 for group-normalised advantages, got {group_size}")
    if scores.shape[0] % group_size:
        raise ValueError(f"{scores.shape[0]} scores do not split into groups of {group_size}")
    grouped = scores.view(-1, group_size)
    normalised = (grouped - grouped.mean(1, keepdim=True)) / (grouped.std(1, keepdim=True) + eps)
    return normalised.view(-1)


def sequence_baseline_advantages(values: Tensor, group_size: int = 1) -> Tensor:
    """Critic-free sequence advantage `v - baseline`, `[B] -> [B]`.

    The baseline is the mean of the answer's group (same prompt) when `group_size > 1`, else the
    batch mean. Used for the safety cost, which has no critic of its own (REINFORCE with a
    baseline, Williams 1992).
    """
    if group_size > 1:
        grouped = values.view(-1, group_size)
        return (grouped - grouped.mean(1, keepdim=True)).view(-1)
    return values - values.mean()


def constrained_advantages(reward_advantages: Tensor, cost_advantages: Tensor, multiplier: float) -> Tensor:
    """Lagrangian combination of Safe RLHF (Dai et al. 2023):

        A = (A_reward - lambda * A_cost) / (1 + lambda)
    Dividing by 1 + lambda keeps the scale of A steady as lambda grows.
    """
    return (reward_advantages - multiplier * cost_advantages) / (1.0 + multiplier)


# ----------------------------------------------------------------------------- losses


def policy_loss(logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor,
                clip_range: float = 0.2) -> tuple[Tensor, dict[str, Tensor]]:
    """Clipped surrogate (Schulman et al. 2017, eq. 7), as a loss to minimise:

        ratio = exp(logp - old_logp)
        L     = token_mean( max(-A * ratio, -A * clip(ratio, 1 - eps, 1 + eps)) )
    Stats (detached): `clipfrac`, the share of tokens where the clipped term is active, and
    `approx_kl` = token_mean((ratio - 1) - log ratio), the k3 estimate of KL(old || new) used for
    the epoch early stop.
    """
    log_ratio = logp - old_logp
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)
    loss = masked_token_mean(torch.maximum(unclipped, clipped), mask)
    with torch.no_grad():
        stats = {
            "clipfrac": masked_token_mean((clipped > unclipped).to(logp.dtype), mask),
            "approx_kl": masked_token_mean(torch.expm1(log_ratio) - log_ratio, mask),
            "ratio": masked_token_mean(ratio, mask),
        }
    return loss, stats


def value_loss(values: Tensor, old_values: Tensor, returns: Tensor, mask: Tensor,
               clip_range: float = 0.2) -> tuple[Tensor, dict[str, Tensor]]:
    """Clipped value loss (as in OpenAI baselines' PPO2 and Ziegler et al. 2019):

        V_clip = old_V + clip(V - old_V, -eps, eps)
        L      = 0.5 * token_mean( max((V - R)^2, (V_clip - R)^2) )
    Stats: `clipfrac` (share of tokens where the clipped error is the larger one).
    """
    clipped_values = old_values + torch.clamp(values - old_values, -clip_range, clip_range)
    error = (values - returns).pow(2)
    clipped_error = (clipped_values - returns).pow(2)
    loss = 0.5 * masked_token_mean(torch.maximum(error, clipped_error), mask)
    with torch.no_grad():
        stats = {"clipfrac": masked_token_mean((clipped_error > error).to(values.dtype), mask)}
    return loss, stats


# ----------------------------------------------------------------------------- preference losses


def answer_logprobs(token_logprobs: Tensor, mask: Tensor, reduction: Literal["sum", "mean"] = "sum") -> Tensor:
    """log pi(y|x) of each answer from its per-token log-probs, `[B, T] -> [B]`.

        sum:  sum_t mask_t * logp_t       the sequence log-probability DPO's derivation uses
        mean: masked_token_mean(dim=1)    per-token average, which IPO uses (length-normalised)
    A sum is not an average, so it does not go through `masked_token_mean`; padding counts 0.
    """
    if reduction == "sum":
        return (token_logprobs * mask.to(token_logprobs.dtype)).sum(-1)
    if reduction == "mean":
        return masked_token_mean(token_logprobs, mask, dim=1)
    raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")


def dpo_loss(policy_chosen: Tensor, policy_rejected: Tensor, ref_chosen: Tensor, ref_rejected: Tensor, beta: float,
             loss_type: DPOLossType = "sigmoid", label_smoothing: float = 0.0) -> tuple[Tensor, dict[str, Tensor]]:
    """Preference loss on answer log-probs `[B]` of the policy and the reference, mean over pairs.

    With the implicit reward r(y) = beta * (log pi(y|x) - log pi_ref(y|x)) and
    h = (log pi(y_w) - log pi_ref(y_w)) - (log pi(y_l) - log pi_ref(y_l)):
        sigmoid (DPO, Rafailov et al. 2023, eq. 7):
            L = -(1 - eps) * log sigmoid(beta * h) - eps * log sigmoid(-beta * h)
            (eps = `label_smoothing`: conservative DPO, Mitchell 2023; eps = 0 is plain DPO)
        ipo (Azar et al. 2023, eq. 17):
            L = (h - 1 / (2 * beta))^2
    Stats (detached means over pairs): `rewards/chosen` r(y_w), `rewards/rejected` r(y_l),
    `rewards/margin` r(y_w) - r(y_l), `rewards/accuracy` the share of pairs with r(y_w) > r(y_l)
    (an exact tie counts half: before the first step the policy is the reference, every margin is
    0 and the accuracy is chance, 0.5), `logps/chosen` and `logps/rejected` under the policy.
    """
    if beta <= 0:
        raise ValueError(f"beta must be positive, got {beta}")
    if not 0.0 <= label_smoothing < 0.5:
        raise ValueError(f"label_smoothing must be in [0, 0.5), got {label_smoothing}")
    chosen_log_ratio = policy_chosen - ref_chosen
    rejected_log_ratio = policy_rejected - ref_rejected
    h = chosen_log_ratio - rejected_log_ratio
    if loss_type == "sigmoid":
        losses = (-(1.0 - label_smoothing) * torch.nn.functional.logsigmoid(beta * h)
                  - label_smoothing * torch.nn.functional.logsigmoid(-beta * h))
    elif loss_type == "ipo":
        if label_smoothing:
            raise ValueError("label_smoothing applies to the sigmoid loss only; IPO is already bounded")
        losses = (h - 1.0 / (2.0 * beta)).pow(2)
    else:
        raise ValueError(f"loss_type must be 'sigmoid' or 'ipo', got {loss_type!r}")
    with torch.no_grad():
        chosen_rewards = beta * chosen_log_ratio.detach()
        rejected_rewards = beta * rejected_log_ratio.detach()
        margin = chosen_rewards - rejected_rewards
        accuracy = (margin > 0).to(margin.dtype) + 0.5 * (margin == 0).to(margin.dtype)
        stats = {
            "rewards/chosen": chosen_rewards.mean(), "rewards/rejected": rejected_rewards.mean(),
            "rewards/margin": margin.mean(), "rewards/accuracy": accuracy.mean(),
            "logps/chosen": policy_chosen.detach().mean(), "logps/rejected": policy_rejected.detach().mean(),
        }
    return losses.mean(), stats
