"""One PPO update: epochs over shuffled mini-batches, gradient accumulation over micro-batches,
global gradient clipping, and the approximate-KL early stop.

An out-of-memory error inside a mini-batch discards that mini-batch's partial gradients,
halves the micro-batch and redoes it; no optimizer step has been taken for it yet, so the
retry trains on exactly the same data.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable

import torch

from clinical_rlhf.config import PPOConfig
from clinical_rlhf.rl import losses
from clinical_rlhf.rl.experience import Experience
from clinical_rlhf.rl.rollout import policy_pass

log = logging.getLogger(__name__)


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


def micro_batch_loss(bundle, batch: Experience, ppo: PPOConfig, temperature: float) -> tuple[torch.Tensor, dict]:
    """Combined loss of one micro-batch: policy + vf_coef * value - entropy_coef * entropy."""
    rollout = batch.rollout
    mask = rollout.response_mask
    logprobs, values, logits = policy_pass(bundle, rollout, temperature)
    pg_loss, pg_stats = losses.policy_loss(logprobs, rollout.logprobs, batch.advantages, mask, ppo.clip_range)
    with torch.set_grad_enabled(ppo.entropy_coef > 0):
        entropy = losses.masked_token_mean(losses.entropy_from_logits(logits, temperature), mask)
    loss = pg_loss - ppo.entropy_coef * entropy
    stats = {"policy/loss": pg_loss.detach(), "policy/entropy": entropy.detach(),
             "policy/clipfrac": pg_stats["clipfrac"], "policy/approx_kl": pg_stats["approx_kl"],
             "policy/ratio": pg_stats["ratio"]}
    if ppo.advantage_estimator == "gae":
        v_loss, v_stats = losses.value_loss(values, rollout.values, batch.returns, mask, ppo.clip_range_value)
        loss = loss + ppo.vf_coef * v_loss
        stats |= {"value/loss": v_loss.detach(), "value/clipfrac": v_stats["clipfrac"],
                  "value/mean": losses.masked_token_mean(values.detach(), mask)}
    return loss, stats


def _accumulate(bundle, mini: Experience, ppo: PPOConfig, temperature: float, micro: int) -> dict[str, float]:
    """Backward over the micro-batches of one mini-batch; stats are sample-weighted means."""
    totals: dict[str, float] = defaultdict(float)
    for start in range(0, len(mini), micro):
        part = mini.select(torch.arange(start, min(start + micro, len(mini))))
        weight = len(part) / len(mini)
        loss, stats = micro_batch_loss(bundle, part, ppo, temperature)
        (loss * weight).backward()
        for key, value in stats.items():
            totals[key] += float(value) * weight
    return totals


def exceeds_target_kl(ppo: PPOConfig) -> Callable[[dict[str, float]], bool]:
    """The default epoch early stop: approximate KL above `training.ppo.target_kl` (None: never)."""
    return lambda stats: ppo.target_kl is not None and stats["policy/approx_kl"] > ppo.target_kl


def ppo_update(bundle, optimizer: torch.optim.Optimizer, experience: Experience, *, ppo: PPOConfig,
               temperature: float, micro_batch: MicroBatchSize,
               stop_epoch: Callable[[dict[str, float]], bool] | None = None) -> dict[str, float]:
    """Run the PPO epochs on `experience`; returns the mean of each statistic over optimizer steps.

    Mini-batch order comes from the global torch RNG (restored on resume). After every optimizer
    step `stop_epoch(stats)` may end the epoch loop (default: `exceeds_target_kl(ppo)`).
    """
    parameters = list(bundle.trainable_parameters())
    stop_epoch = stop_epoch or exceeds_target_kl(ppo)
    epochs = ppo.ppo_epochs
    mini_size = min(ppo.mini_batch_size, len(experience))
    history: dict[str, list[float]] = defaultdict(list)
    early_stopped = False
    epoch = 0
    for epoch in range(1, epochs + 1):
        order = torch.randperm(len(experience))
        for start in range(0, len(experience), mini_size):
            mini = experience.select(order[start:start + mini_size])
            while True:
                optimizer.zero_grad(set_to_none=True)
                try:
                    stats = _accumulate(bundle, mini, ppo, temperature, micro_batch.value)
                    break
                except (torch.OutOfMemoryError, RuntimeError) as error:
                    if not is_out_of_memory(error):
                        raise
                    optimizer.zero_grad(set_to_none=True)
                    micro_batch.halve("out of memory in the PPO update")
            grad_norm = torch.nn.utils.clip_grad_norm_(parameters, ppo.max_grad_norm)
            optimizer.step()
            stats["policy/grad_norm"] = float(grad_norm)
            for key, value in stats.items():
                history[key].append(value)
            # Early stop of the epoch loop (CleanRL ppo.py): the policy moved too far from the
            # one that sampled the rollout for the clipped objective to be trusted.
            if stop_epoch(stats):
                early_stopped = True
                break
        if early_stopped:
            break
    optimizer.zero_grad(set_to_none=True)
    result = {key: sum(values) / len(values) for key, values in history.items()}
    result["policy/epochs"] = float(epoch)
    result["policy/early_stopped"] = float(early_stopped)
    result["policy/optimizer_steps"] = float(len(history["policy/grad_norm"]))
    return result
