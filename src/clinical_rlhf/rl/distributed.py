"""Multi-process training: who this process is, and the few collectives the PPO loop needs.

`accelerate launch` (or torchrun) starts one process per device and sets RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR and MASTER_PORT. `Distributed.from_environment()` joins the process
group through accelerate's `PartialState` (gloo on CPU, NCCL on CUDA). A plain
`clinical-rlhf train` is a world of one, where every collective below is the identity: the
single-process trainer runs exactly the same code.

What the trainer relies on (docs/distributed.md explains each in more words):

- data: `training.ppo.batch_size` is the global batch. Every rank draws the same prompt batch
  (same sampler seed, same cursor) and keeps its contiguous shard (`shard`), so the answers of
  one prompt stay on one rank (group advantages need them together);
- gradients: each rank's loss is its share of the global token mean of a mini-batch, so the
  SUM of the ranks' gradients is the single-process gradient; `sync_gradients` all-reduces
  with SUM (DDP averages, which would be the same only with equal token counts per rank);
- metrics: per-answer values are gathered (`gather`), so every rank computes the global
  metric itself (unsafe ratio = unsafe answers / all answers, not a mean of per-rank ratios)
  and every rank's safety rules, early stops and rollbacks take the same branch;
- seeds: initial trainable weights are broadcast from rank 0 (identical replicas whatever
  each rank's RNG did while building the model); sampling then draws from `seed + rank`.

FSDP (config/accelerate/fsdp.yaml, `rl/sharding.py`) and DeepSpeed ZeRO (the deepspeed_*.yaml
configs, `rl/zero.py`) partition the training state over the ranks instead of replicating it:
then every backward pass is a collective (`partitions_state`), and under FSDP and ZeRO-3, which
partition the weights themselves, every forward pass too (`shards_parameters`); the loop takes
the few extra steps that asks for.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import torch

from clinical_rlhf.errors import ConfigError
from clinical_rlhf.models.sharded import is_sharded
from clinical_rlhf.rl.sharding import fsdp_options
from clinical_rlhf.rl.zero import zero_options

STRATEGIES = ("single", "ddp", "deepspeed", "fsdp")
"""single: one process; ddp: replicas with gradient all-reduce (accelerate MULTI_CPU/MULTI_GPU);
fsdp: models sharded with FSDP2 (`rl/sharding.py`); deepspeed: a ZeRO engine (`rl/zero.py`)."""

DISTRIBUTED_EXTRA = "pip install 'clinical-rlhf[distributed]'"
MIN_DEEPSPEED = (0, 19, 4)
"""The first DeepSpeed with caller-owned gradient accumulation (`rl/zero.py`)."""

COLLECTIVE_TIMEOUT = timedelta(minutes=60)
"""How long a rank waits in a collective before the run fails. Longer than torch's default
(10 min under NCCL) because the other ranks wait while rank 0 alone evaluates the held-out
prompts and writes checkpoints, which for a 70B model can take several minutes."""


def launcher_strategy(environ: dict[str, str] | None = None) -> str:
    """The strategy `accelerate launch` asked for, read from the variables it exports
    (ACCELERATE_USE_DEEPSPEED / ACCELERATE_USE_FSDP come from the config's distributed_type)."""
    env = os.environ if environ is None else environ
    if env.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true":
        return "deepspeed"
    if env.get("ACCELERATE_USE_FSDP", "false").lower() == "true":
        return "fsdp"
    return "ddp" if world_size_from_env(env) > 1 else "single"


def zero_stage_from_env(environ: dict[str, str] | None = None) -> int:
    """The ZeRO stage of the DeepSpeed config `accelerate launch` was given (its default: 2)."""
    env = os.environ if environ is None else environ
    stage = env.get("ACCELERATE_DEEPSPEED_ZERO_STAGE", "2")
    return int(stage) if stage.isdigit() else 0


def world_size_from_env(environ: dict[str, str] | None = None) -> int:
    env = os.environ if environ is None else environ
    return int(env.get("WORLD_SIZE", "1") or 1)


def require_deepspeed(config_hint: str = "the DeepSpeed accelerate config") -> None:
    """Raise ConfigError when deepspeed is not importable (it is the optional `distributed` extra)."""
    if importlib.util.find_spec("deepspeed") is None:
        raise ConfigError(f"{config_hint} needs DeepSpeed, which is not installed; install it with "
                          f"{DISTRIBUTED_EXTRA}, or launch with config/accelerate/ddp.yaml")
    version = importlib.metadata.version("deepspeed")
    if tuple(int(part) for part in version.split(".")[:3] if part.isdigit()) < MIN_DEEPSPEED:
        # older versions ignore `managed_gradient_accumulation` silently: the gradients of all
        # but the last micro-batch of a mini-batch would be lost
        raise ConfigError(f"{config_hint} needs DeepSpeed >= {'.'.join(map(str, MIN_DEEPSPEED))}, found {version}; "
                          f"upgrade with {DISTRIBUTED_EXTRA} --upgrade")


@dataclass
class Distributed:
    """This process's place in the run. Build with `from_environment()`, `current()` or `single()`."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    strategy: str = "single"
    """One of STRATEGIES."""
    backend: str | None = None
    """gloo, nccl, ... (None for a single process)."""
    device: torch.device = torch.device("cpu")
    """Where collective tensors live: the rank's CUDA device under NCCL, else CPU."""
    zero_stage: int = 0
    """DeepSpeed ZeRO stage (1, 2 or 3) when `strategy` is deepspeed, else 0."""

    # ------------------------------------------------------------------ construction

    @classmethod
    def single(cls) -> Distributed:
        return cls()

    @classmethod
    def current(cls) -> Distributed:
        """The initialised process group's view, or a world of one when there is none (so a
        trainer built inside an `accelerate launch` script without an explicit runtime still
        shards its data instead of running N identical copies)."""
        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            return cls.single()
        backend = str(torch.distributed.get_backend())
        device = (torch.device("cuda", torch.cuda.current_device())
                  if "nccl" in backend and torch.cuda.is_available() else torch.device("cpu"))
        world_size = torch.distributed.get_world_size()
        strategy = launcher_strategy()
        return cls(world_size=world_size, rank=torch.distributed.get_rank(),
                   local_rank=int(os.environ.get("LOCAL_RANK", "0")),
                   strategy="ddp" if strategy == "single" and world_size > 1 else strategy,
                   backend=backend, device=device, zero_stage=zero_stage_from_env() if strategy == "deepspeed" else 0)

    @classmethod
    def from_environment(cls, *, cpu: bool = False) -> Distributed:
        """Join the process group the launcher prepared (a world of one without a launcher).

        `cpu=True` (model.device=cpu, or `accelerate launch --cpu`) forces gloo on a machine
        that has GPUs. DeepSpeed configs need deepspeed installed; see `check_supported`.
        """
        strategy = launcher_strategy()
        if strategy == "deepspeed":
            require_deepspeed()
        if strategy == "single":
            return cls.single()
        from accelerate import PartialState

        cpu = cpu or os.environ.get("ACCELERATE_USE_CPU", "false").lower() == "true" or not torch.cuda.is_available()
        state = PartialState(cpu=cpu, timeout=COLLECTIVE_TIMEOUT)
        if state.num_processes <= 1 and strategy == "deepspeed":
            # ZeRO-3 offload on one GPU: no ranks to share with, but weights and Adam moments in
            # host RAM (the engine joins a process group of one)
            return cls(strategy=strategy, device=state.device, zero_stage=zero_stage_from_env())
        if state.num_processes <= 1:
            return cls.single()
        device = state.device if state.device.type == "cuda" else torch.device("cpu")
        return cls(world_size=state.num_processes, rank=state.process_index, local_rank=state.local_process_index,
                   strategy=strategy, backend=str(state.backend), device=device,
                   zero_stage=zero_stage_from_env() if strategy == "deepspeed" else 0)

    def check_supported(self, cfg=None) -> None:
        """Refuse the launcher options this trainer does not run, before the model loads: FSDP and
        DeepSpeed options are validated (`fsdp_options`, `zero_options`), and with `cfg` a
        bitsandbytes-quantized base is refused under both (sharding 4/8-bit weights is not done).
        """
        if self.strategy not in ("fsdp", "deepspeed"):
            return
        if self.strategy == "fsdp":
            fsdp_options()
            launcher, instead = "config/accelerate/fsdp.yaml", "sharding bitsandbytes weights (QLoRA-FSDP) needs " \
                "bnb_4bit_quant_storage and a GPU, which this trainer does not support"
        else:
            require_deepspeed()
            training = getattr(cfg, "training", None)
            zero_options(max_grad_norm=training.ppo.max_grad_norm if training is not None else None)
            launcher, instead = "a DeepSpeed config", "DeepSpeed would cast or partition the bitsandbytes weights"
        loading = getattr(cfg, "model_loading", None)
        if loading is not None and (loading.load_in_4bit or loading.load_in_8bit):
            raise ConfigError(
                f"model_loading.load_in_4bit/load_in_8bit cannot be used with {launcher}: {instead}; launch with "
                f"config/accelerate/ddp.yaml (one quantized replica per GPU), or turn quantization off to "
                f"partition 16-bit weights")

    @property
    def shards_parameters(self) -> bool:
        """FSDP, or ZeRO-3, over several processes: the weights are partitioned, so every forward
        pass is a collective that all ranks must run together (same count, same order)."""
        weights_partitioned = self.strategy == "fsdp" or (self.strategy == "deepspeed" and self.zero_stage == 3)
        return self.is_distributed and weights_partitioned

    @property
    def partitions_state(self) -> bool:
        """FSDP or DeepSpeed ZeRO over several processes: gradients and optimizer moments are
        partitioned, so every backward pass is a collective (every rank runs the same number of
        micro-batches) and checkpoints are gathered on every rank."""
        return self.is_distributed and self.strategy in ("fsdp", "deepspeed")

    # ------------------------------------------------------------------ identity

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes checkpoints, the audit log, tracking and the bar."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    def shard(self, total: int, *, what: str = "training.ppo.batch_size") -> range:
        """The contiguous block of `range(total)` this rank owns; `total` must split evenly
        (uneven shards would give ranks different numbers of collectives)."""
        if total % self.world_size:
            raise ConfigError(f"{what} = {total} does not split evenly over {self.world_size} processes; "
                              f"set it to a multiple of {self.world_size} (it is the global batch)")
        size = total // self.world_size
        return range(self.rank * size, (self.rank + 1) * size)

    # ------------------------------------------------------------------ collectives

    def barrier(self) -> None:
        if self.is_distributed:
            torch.distributed.barrier()

    @contextlib.contextmanager
    def main_process_first(self) -> Iterator[None]:
        """Rank 0 runs the block first, the others after it (building the demo model or a
        corpus into a shared cache once, then reading it)."""
        if not self.is_main:
            self.barrier()
        try:
            yield
        finally:
            if self.is_main:
                self.barrier()

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Element-wise sum over ranks (a new tensor on the caller's device; float64 inside, so
        counts and sums of a large batch do not lose precision)."""
        if not self.is_distributed:
            return tensor.clone()
        reduced = tensor.detach().to(self.device, torch.float64).clone()
        torch.distributed.all_reduce(reduced, op=torch.distributed.ReduceOp.SUM)
        return reduced.to(tensor.device, tensor.dtype)

    def sum_floats(self, values: dict[str, float]) -> dict[str, float]:
        """Sum each value over ranks in one all-reduce. Every rank must pass the same keys."""
        if not self.is_distributed:
            return dict(values)
        keys = sorted(values)
        reduced = self.sum(torch.tensor([float(values[k]) for k in keys], dtype=torch.float64))
        return {key: float(value) for key, value in zip(keys, reduced.tolist())}

    def min_int(self, value: int) -> int:
        if not self.is_distributed:
            return int(value)
        tensor = torch.tensor([int(value)], dtype=torch.int64, device=self.device)
        torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.MIN)
        return int(tensor.item())

    def any(self, flag: bool) -> bool:
        """True on every rank when it is true on at least one (stop requests, abandoned rollouts)."""
        if not self.is_distributed:
            return bool(flag)
        tensor = torch.tensor([1 if flag else 0], dtype=torch.int64, device=self.device)
        torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.MAX)
        return bool(tensor.item())

    def gather(self, value: Any) -> list[Any]:
        """Every rank's `value` (any picklable object), in rank order, on every rank."""
        if not self.is_distributed:
            return [value]
        gathered: list[Any] = [None] * self.world_size
        torch.distributed.all_gather_object(gathered, value)
        return gathered

    def gather_tensor(self, tensor: torch.Tensor) -> torch.Tensor:
        """Concatenate equally shaped 1-d tensors of every rank along dim 0, in rank order."""
        if not self.is_distributed:
            return tensor.clone()
        local = tensor.detach().to(self.device).contiguous()
        parts = [torch.empty_like(local) for _ in range(self.world_size)]
        torch.distributed.all_gather(parts, local)
        return torch.cat(parts).to(tensor.device)

    def broadcast(self, value: Any, src: int = 0) -> Any:
        """Rank `src`'s `value` on every rank (any picklable object)."""
        if not self.is_distributed:
            return value
        holder = [value if self.rank == src else None]
        torch.distributed.broadcast_object_list(holder, src=src)
        return holder[0]

    def broadcast_parameters(self, parameters: Iterable[torch.nn.Parameter], src: int = 0) -> None:
        """Copy rank `src`'s values into every rank's `parameters` (identical initial replicas)."""
        if not self.is_distributed:
            return
        with torch.no_grad():
            for parameter in parameters:
                buffer = parameter.data.to(self.device)
                torch.distributed.broadcast(buffer, src=src)
                if buffer is not parameter.data:
                    parameter.data.copy_(buffer)

    def sync_gradients(self, parameters: Sequence[torch.nn.Parameter]) -> None:
        """All-reduce (SUM) the gradients of `parameters`, flattened into one buffer per dtype.

        A parameter without a gradient on this rank (this rank held no rows of the mini-batch)
        contributes zeros; one without a gradient on every rank keeps `grad = None`, so the
        optimizer skips it exactly as a single process would (e.g. the value head under
        critic-free group advantages). Sharded (FSDP) parameters are skipped: FSDP has already
        reduce-scattered their gradients, with the same SUM.
        """
        if not self.is_distributed:
            return
        parameters = [p for p in parameters if not is_sharded(p)]
        if not parameters:
            return
        present = torch.tensor([p.grad is not None for p in parameters], dtype=torch.int64, device=self.device)
        torch.distributed.all_reduce(present, op=torch.distributed.ReduceOp.MAX)
        active = [p for p, has in zip(parameters, present.tolist()) if has]
        for parameter in active:
            if parameter.grad is None:
                parameter.grad = torch.zeros_like(parameter)
        by_dtype: dict[torch.dtype, list[torch.nn.Parameter]] = {}
        for parameter in active:
            by_dtype.setdefault(parameter.grad.dtype, []).append(parameter)
        for group in by_dtype.values():
            flat = torch.cat([p.grad.reshape(-1).to(self.device) for p in group])
            torch.distributed.all_reduce(flat, op=torch.distributed.ReduceOp.SUM)
            offset = 0
            for parameter in group:
                count = parameter.grad.numel()
                parameter.grad.copy_(flat[offset:offset + count].view_as(parameter.grad))
                offset += count

    def replicas_agree(self, tensors: Iterable[torch.Tensor]) -> bool:
        """Whether every rank holds bit-identical `tensors` (compared through a SHA-256 of their
        bytes): the invariant of data-parallel training, checked at each checkpoint."""
        if not self.is_distributed:
            return True
        digest = hashlib.sha256()
        for tensor in tensors:
            digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
        return len(set(self.gather(digest.hexdigest()))) == 1

    def close(self) -> None:
        """Leave the process group (after the last collective; a no-op for one process)."""
        if self.is_distributed and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def rank_seed(seed: int, rank: int) -> int:
    """The sampling seed of `rank`: `seed + rank` (rank 0 keeps the configured seed)."""
    return seed + rank


def derived_seed(seed: int, *keys: int) -> int:
    """A seed for the stream named by `keys` within run `seed` (numpy's SeedSequence: distinct
    keys give statistically independent streams, unlike `seed + k` which collide across runs)."""
    return int(np.random.SeedSequence([seed % 2**63, *keys]).generate_state(1)[0])


class NullTracker:
    """What ranks other than 0 hold instead of the run tracker: every call is a no-op, so the
    loop reads the same on every rank while only rank 0 writes metrics, events and MLflow."""

    def log_params(self, params) -> None:
        pass

    def log_metrics(self, step, metrics) -> None:
        pass

    def log_event(self, step, kind, severity, message, **details) -> None:
        pass

    def log_checkpoint(self, step, path, kind, seconds) -> None:
        pass

    def log_alerts(self, step, fired) -> None:
        pass
