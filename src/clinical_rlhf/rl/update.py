"""One PPO update: epochs over shuffled mini-batches, gradient accumulation over micro-batches,
global gradient clipping, and the approximate-KL early stop.

The loss of a mini-batch is the token mean over all of its answer tokens. Each micro-batch's
token mean is weighted by its share of the mini-batch's tokens (not of its answers), so the
gradient does not depend on how the mini-batch is cut into micro-batches, nor on how it is
spread over processes:

    loss(mini) = sum_micro  token_mean(micro) * tokens(micro) / tokens(mini)

That freedom is used to waste less compute on padding: the rows of a mini-batch are cut into
micro-batches by length (longest first), and each micro-batch drops the columns that are
padding in all of its rows (`Experience.without_padding_columns`), so a pass runs on the
longest of similar rows rather than the longest of the batch.

Under several processes the mini-batches are drawn from the global batch with a permutation
every rank computes alike; each rank back-propagates the rows of the mini-batch it holds,
divided by the mini-batch's global token count, and the gradients are summed over ranks before
clipping: the single-process step on the same batch. Which rows a rank holds, and the
zero-weighted passes that keep FSDP and ZeRO ranks in step, are `RankMiniBatches`'s business;
how gradients are summed, clipped and applied is the stepper's (`LocalStep`, or `ZeroEngine` in
`rl/zero.py`). What is left here reads like CleanRL's loop.

An out-of-memory error inside a mini-batch discards that mini-batch's partial gradients,
halves the micro-batch and redoes it (`rl/memory.py`); no optimizer step has been taken for it
yet, so the retry trains on exactly the same data and the same loss. Under FSDP and ZeRO it is
raised instead: the other ranks are inside the same collectives and cannot redo the step with
this one alone.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator

import torch

from clinical_rlhf.config import PPOConfig
from clinical_rlhf.models.sharded import full_tensor
from clinical_rlhf.rl import losses
from clinical_rlhf.rl.distributed import Distributed
from clinical_rlhf.rl.experience import Experience
from clinical_rlhf.rl.memory import MicroBatchSize, back_off_on_oom
from clinical_rlhf.rl.rollout import policy_pass

MicroBatches = list[tuple[Experience, float]]
"""(micro-batch, weight) pairs of one rank's share of a mini-batch; weight 0 marks a filler pass."""


def micro_batch_loss(bundle, batch: Experience, ppo: PPOConfig, temperature: float) -> tuple[torch.Tensor, dict]:
    """Combined loss of one micro-batch: policy + vf_coef * value - entropy_coef * entropy.

    With `entropy_coef` 0 the entropy is not part of the loss and no vocabulary-wide entropy
    pass runs: `policy/entropy` is then the sampled-token estimate -token_mean(log pi_old(a_t))
    of the rollout policy, which the rollout already computed (E_a~pi[-log pi(a)] = H(pi)).
    """
    rollout = batch.rollout
    mask = rollout.response_mask
    logprobs, values, logits = policy_pass(bundle, rollout, temperature)
    pg_loss, pg_stats = losses.policy_loss(logprobs, rollout.logprobs, batch.advantages, mask, ppo.clip_range)
    loss = pg_loss
    if ppo.entropy_coef > 0:
        entropy = losses.masked_token_mean(losses.entropy_from_logits(logits, temperature), mask)
        loss = loss - ppo.entropy_coef * entropy
    else:
        entropy = -losses.masked_token_mean(rollout.logprobs, mask)
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


class RankMiniBatches:
    """The distributed bookkeeping of an update: which rows of each global mini-batch this rank
    holds, cut into micro-batches with their token weights.

    `experience` is this rank's shard of the global batch (rank r owns global rows
    [r * len, (r + 1) * len); the whole batch for one process). Under FSDP and ZeRO every
    forward and backward pass is a collective, so every rank runs the same number of passes
    per mini-batch: a rank holding fewer rows adds passes over one of its own rows with
    weight 0 (zero gradient, same collectives).
    """

    def __init__(self, experience: Experience, distributed: Distributed) -> None:
        self.experience, self.distributed = experience, distributed
        self.owned = distributed.shard(len(experience) * distributed.world_size)
        self.tokens = distributed.gather_tensor(experience.rollout.response_mask.sum(1).float().cpu())
        rollout = experience.rollout
        self.lengths = (rollout.query_mask.sum(1) + rollout.response_mask.sum(1)).cpu()

    def __len__(self) -> int:
        """Rows of the global batch."""
        return len(self.tokens)

    def schedule(self, epochs: int, mini_batch_size: int,
                 generator: torch.Generator | None) -> Iterator[tuple[int, torch.Tensor]]:
        """(epoch, global rows of one mini-batch), epoch after epoch, each epoch a new permutation."""
        total = len(self)
        for epoch in range(1, epochs + 1):
            order = torch.randperm(total, generator=generator) if generator is not None else torch.randperm(total)
            for start in range(0, total, mini_batch_size):
                yield epoch, order[start:start + mini_batch_size]

    def micro_batches(self, rows: torch.Tensor, micro: int) -> MicroBatches:
        """This rank's rows of mini-batch `rows` in micro-batches of at most `micro` rows, longest
        first and without all-padding columns, each weighted by its share of the mini-batch's
        answer tokens over every rank."""
        mini_tokens = max(float(self.tokens[rows].sum()), 1.0)
        mine = rows[(rows >= self.owned.start) & (rows < self.owned.stop)] - self.owned.start
        if len(mine) > micro:  # length buckets: similar lengths share a pass
            mine = mine[torch.sort(self.lengths[mine], descending=True, stable=True).indices]
        parts = []
        for start in range(0, len(mine), micro):
            part = self.experience.select(mine[start:start + micro]).without_padding_columns()
            parts.append((part, float(part.rollout.response_mask.sum()) / mini_tokens))
        if self.distributed.partitions_state:
            held = torch.bincount(torch.div(rows, len(self.experience), rounding_mode="floor"),
                                  minlength=self.distributed.world_size).tolist()
            passes = max(-(-count // micro) for count in held)
            filler = self.experience.select(torch.arange(1)).without_padding_columns()
            parts += [(filler, 0.0)] * (passes - len(parts))
        return parts


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
        self.distributed.sync_gradients(self.parameters)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.parameters, self.max_grad_norm)
        self.optimizer.step()
        return float(full_tensor(grad_norm))


def accumulate_gradients(stepper, parts: MicroBatches, loss_of: Callable[[Experience], tuple]) -> dict[str, float]:
    """Backward over `parts` (fresh gradients); returns this rank's token-weighted share of each
    statistic (summed over ranks: the mini-batch's token mean)."""
    stepper.zero_grad()
    totals: dict[str, float] = defaultdict(float)
    for part, weight in parts:
        loss, stats = stepper.forward(lambda part=part: loss_of(part))
        stepper.backward(loss * weight)
        if weight:  # a filler pass contributes nothing, not even a NaN
            for key, value in stats.items():
                totals[key] += float(value) * weight
    return dict(totals)


def ppo_update(bundle, optimizer, experience: Experience, *, ppo: PPOConfig,
               temperature: float, micro_batch: MicroBatchSize,
               stop_epoch: Callable[[dict[str, float]], bool] | None = None,
               distributed: Distributed | None = None, generator: torch.Generator | None = None) -> dict[str, float]:
    """Run the PPO epochs on `experience`; returns the mean of each statistic over optimizer steps.

    `experience` is this rank's shard (rows `distributed.shard(...)` of the global batch; the
    whole batch for one process). Mini-batch order: `generator` when given (the trainer seeds
    one per iteration, so every rank and any number of ranks draw the same order), else the
    global torch RNG (one process only). After every optimizer step the epoch loop ends when the
    approximate KL exceeds `training.ppo.target_kl`, or when `stop_epoch(stats)` says so (the
    trainer's alert rules with action early_stop_epoch); the stats are global, so every rank
    stops at the same step. `optimizer`: a torch optimizer over `bundle.trainable_parameters()`,
    or the `ZeroEngine` that owns the step under DeepSpeed (`rl/zero.py`).
    """
    distributed = distributed or Distributed.single()
    if distributed.is_distributed and generator is None:
        raise ValueError("generator is required with several processes: every rank must draw the same mini-batches")
    stepper = (LocalStep(optimizer, list(bundle.trainable_parameters()), distributed, ppo.max_grad_norm)
               if isinstance(optimizer, torch.optim.Optimizer) else optimizer)
    batches = RankMiniBatches(experience, distributed)
    zero_stats = dict.fromkeys(statistic_keys(ppo), 0.0)  # a rank without rows still reduces every key
    history: dict[str, list[float]] = defaultdict(list)
    epoch, early_stopped = 0, False
    for epoch, rows in batches.schedule(ppo.ppo_epochs, min(ppo.mini_batch_size, len(batches)), generator):
        stats = back_off_on_oom(
            micro_batch, "out of memory in the PPO update",
            lambda: accumulate_gradients(stepper, batches.micro_batches(rows, micro_batch.value),
                                         lambda part: micro_batch_loss(bundle, part, ppo, temperature)),
            retry=not distributed.partitions_state, discard=stepper.zero_grad)
        stats = distributed.sum_floats(zero_stats | stats)
        stats["policy/grad_norm"] = stepper.step()
        for key, value in stats.items():
            history[key].append(value)
        # Early stop (CleanRL ppo.py): the policy moved too far from the one that sampled the
        # rollout for the clipped objective to be trusted.
        if ppo.target_kl is not None and stats["policy/approx_kl"] > ppo.target_kl:
            early_stopped = True
            break
        if stop_epoch is not None and stop_epoch(stats):
            early_stopped = True
            break
    stepper.zero_grad()
    result = {key: sum(values) / len(values) for key, values in history.items()}
    result["policy/epochs"] = float(epoch)
    result["policy/early_stopped"] = float(early_stopped)
    result["policy/optimizer_steps"] = float(len(history["policy/grad_norm"]))
    return result
