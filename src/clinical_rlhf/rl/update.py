"""One PPO update: epochs over shuffled mini-batches, gradient accumulation over micro-batches,
global gradient clipping, and the approximate-KL early stop.

The loss of a mini-batch is the token mean over all of its answer tokens. Each micro-batch's
token mean is weighted by its share of the mini-batch's tokens (not of its answers), so the
gradient does not depend on how the mini-batch is cut into micro-batches, nor on how it is
spread over processes:

    loss(mini) = sum_micro  token_mean(micro) * tokens(micro) / tokens(mini)

Under several processes the mini-batches are drawn from the global batch with a permutation
every rank computes alike; each rank back-propagates the rows of the mini-batch it holds,
divided by the mini-batch's global token count, and the gradients are summed over ranks
(`Distributed.sync_gradients`) before clipping: the single-process step on the same batch.

Under FSDP (`rl/sharding.py`) every forward pass is a collective, and under DeepSpeed ZeRO
(`rl/zero.py`) every backward pass is, so every rank runs the same number of micro-batches per
mini-batch: a rank holding fewer of its rows adds passes over one of its own rows with weight 0
(zero gradient, same collectives). FSDP reduce-scatters the gradients with the same SUM, so
`sync_gradients` leaves them alone; under ZeRO the engine reduces, clips and steps (`ZeroEngine`).

An out-of-memory error inside a mini-batch discards that mini-batch's partial gradients,
halves the micro-batch and redoes it; no optimizer step has been taken for it yet, so the
retry trains on exactly the same data and the same loss. Under FSDP and ZeRO it is raised instead: the
other ranks are inside the same collectives and cannot redo the step with this one alone.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable

import torch

from clinical_rlhf.config import PPOConfig
from clinical_rlhf.rl import losses
from clinical_rlhf.rl.distributed import Distributed
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


def statistic_keys(ppo: PPOConfig) -> tuple[str, ...]:
    """The statistics `micro_batch_loss` returns (every rank reduces the same keys, even one
    that holds no row of a mini-batch)."""
    keys = ("policy/loss", "policy/entropy", "policy/clipfrac", "policy/approx_kl", "policy/ratio")
    return keys + (("value/loss", "value/clipfrac", "value/mean") if ppo.advantage_estimator == "gae" else ())


def _accumulate(bundle, stepper, mini: Experience, ppo: PPOConfig, temperature: float, micro: int,
                mini_tokens: float, passes: int | None = None, filler: Experience | None = None) -> dict[str, float]:
    """Backward over the micro-batches of (this rank's rows of) one mini-batch.

    `mini_tokens`: answer tokens of the whole mini-batch, over every rank. Returns this rank's
    token-weighted share of each statistic; summed over ranks it is the mini-batch token mean.
    `passes` (FSDP, ZeRO): run exactly that many forward/backward passes, the ones beyond this
    rank's rows over `filler` with weight 0.
    """
    totals: dict[str, float] = dict.fromkeys(statistic_keys(ppo), 0.0)
    starts = list(range(0, len(mini), micro))
    for index in range(len(starts) if passes is None else passes):
        if index < len(starts):
            part = mini.select(torch.arange(starts[index], min(starts[index] + micro, len(mini))))
            weight = float(part.rollout.response_mask.sum()) / mini_tokens
        else:  # keeps this rank in step with the others' collectives; contributes nothing
            part, weight = filler, 0.0
        loss, stats = stepper.forward(lambda part=part: micro_batch_loss(bundle, part, ppo, temperature))
        stepper.backward(loss * weight)
        if weight:
            for key, value in stats.items():
                totals[key] += float(value) * weight
    return totals


def rows_per_rank(rows: torch.Tensor, shard_size: int, world_size: int) -> list[int]:
    """How many of mini-batch `rows` (global indices) each rank holds; every rank computes it
    alike, since rank r owns rows [r * shard_size, (r + 1) * shard_size)."""
    return torch.bincount(torch.div(rows, shard_size, rounding_mode="floor"), minlength=world_size).tolist()


class LocalStep:
    """The optimizer step of one process, of DDP replicas and of FSDP: plain autograd, gradients
    summed over ranks (`Distributed.sync_gradients`; FSDP has reduce-scattered its own), clipped
    to `max_grad_norm`, one optimizer step. Under DeepSpeed the engine takes this role
    (`rl/zero.py`, `ZeroEngine`: the same four methods)."""

    def __init__(self, optimizer: torch.optim.Optimizer, parameters: list, distributed: Distributed,
                 max_grad_norm: float) -> None:
        self.optimizer, self.parameters, self.distributed = optimizer, parameters, distributed
        self.max_grad_norm = max_grad_norm

    def forward(self, compute):
        return compute()

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def step(self) -> float:
        """Sum over ranks, clip, step; returns the global gradient norm before clipping."""
        from clinical_rlhf.rl.sharding import full_tensor

        self.distributed.sync_gradients(self.parameters)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.parameters, self.max_grad_norm)
        self.optimizer.step()
        return float(full_tensor(grad_norm))


def _minibatch_step(bundle, stepper, mini: Experience, mini_tokens: float, *, ppo: PPOConfig,
                    temperature: float, micro_batch: MicroBatchSize, distributed: Distributed,
                    held: list[int] | None = None, filler: Experience | None = None) -> dict[str, float]:
    """Gradients of one mini-batch (OOM: halve the micro-batch and redo it), summed over ranks,
    clipped, and one optimizer step. Returns the mini-batch's statistics. Under FSDP and ZeRO,
    `held` (`rows_per_rank`) sets the number of passes every rank runs, `filler` pads this rank's."""
    while True:
        stepper.zero_grad()
        passes = max(-(-count // micro_batch.value) for count in held) if held is not None else None
        try:
            stats = _accumulate(bundle, stepper, mini, ppo, temperature, micro_batch.value, mini_tokens, passes,
                                filler)
            break
        except (torch.OutOfMemoryError, RuntimeError) as error:
            if not is_out_of_memory(error) or distributed.partitions_state:
                raise
            stepper.zero_grad()
            micro_batch.halve("out of memory in the PPO update")
    stats = distributed.sum_floats(stats)
    stats["policy/grad_norm"] = stepper.step()
    return stats


def exceeds_target_kl(ppo: PPOConfig) -> Callable[[dict[str, float]], bool]:
    """The default epoch early stop: approximate KL above `training.ppo.target_kl` (None: never)."""
    return lambda stats: ppo.target_kl is not None and stats["policy/approx_kl"] > ppo.target_kl


def ppo_update(bundle, optimizer, experience: Experience, *, ppo: PPOConfig,
               temperature: float, micro_batch: MicroBatchSize,
               stop_epoch: Callable[[dict[str, float]], bool] | None = None,
               distributed: Distributed | None = None, generator: torch.Generator | None = None) -> dict[str, float]:
    """Run the PPO epochs on `experience`; returns the mean of each statistic over optimizer steps.

    `experience` is this rank's shard (rows `distributed.shard(...)` of the global batch; the
    whole batch for one process). Mini-batch order: `generator` when given (the trainer seeds
    one per iteration, so every rank and any number of ranks draw the same order), else the
    global torch RNG (one process only). After every optimizer step `stop_epoch(stats)` may
    end the epoch loop (default: `exceeds_target_kl(ppo)`); the stats are global, so every
    rank stops at the same step. `optimizer`: a torch optimizer over `bundle.trainable_parameters()`,
    or the `ZeroEngine` that owns the step under DeepSpeed (`rl/zero.py`).
    """
    distributed = distributed or Distributed.single()
    if distributed.is_distributed and generator is None:
        raise ValueError("generator is required with several processes: every rank must draw the same mini-batches")
    stepper = (LocalStep(optimizer, list(bundle.trainable_parameters()), distributed, ppo.max_grad_norm)
               if isinstance(optimizer, torch.optim.Optimizer) else optimizer)
    stop_epoch = stop_epoch or exceeds_target_kl(ppo)
    owned = distributed.shard(len(experience) * distributed.world_size)
    tokens = distributed.gather_tensor(experience.rollout.response_mask.sum(1).float().cpu())
    total = len(tokens)
    mini_size = min(ppo.mini_batch_size, total)
    history: dict[str, list[float]] = defaultdict(list)
    early_stopped = False
    epoch = 0
    for epoch in range(1, ppo.ppo_epochs + 1):
        order = torch.randperm(total, generator=generator) if generator is not None else torch.randperm(total)
        for start in range(0, total, mini_size):
            rows = order[start:start + mini_size]
            mine = rows[(rows >= owned.start) & (rows < owned.stop)] - owned.start
            mini_tokens = max(float(tokens[rows].sum()), 1.0)
            held = (rows_per_rank(rows, len(experience), distributed.world_size)
                    if distributed.partitions_state else None)
            stats = _minibatch_step(bundle, stepper, experience.select(mine), mini_tokens, ppo=ppo,
                                    temperature=temperature, micro_batch=micro_batch, distributed=distributed,
                                    held=held, filler=experience.select(torch.arange(1)) if held is not None else None)
            for key, value in stats.items():
                history[key].append(value)
            # Early stop of the epoch loop (CleanRL ppo.py): the policy moved too far from the
            # one that sampled the rollout for the clipped objective to be trusted.
            if stop_epoch(stats):
                early_stopped = True
                break
        if early_stopped:
            break
    stepper.zero_grad()
    result = {key: sum(values) / len(values) for key, values in history.items()}
    result["policy/epochs"] = float(epoch)
    result["policy/early_stopped"] = float(early_stopped)
    result["policy/optimizer_steps"] = float(len(history["policy/grad_norm"]))
    return result
