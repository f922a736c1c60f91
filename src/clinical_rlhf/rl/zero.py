"""DeepSpeed ZeRO for the PPO trainer (config/accelerate/deepspeed_zero2.yaml, deepspeed_zero3_offload.yaml).

One DeepSpeed engine owns every trainable weight of the bundle: the policy (its LoRA matrices),
the value head or separate critic, and, under ZeRO-3, the frozen weights too. The loop keeps its
own maths (token-mean losses, global whitening, clipping threshold, Adam hyperparameters); the
engine only decides where weights, gradients and Adam moments live:

- ZeRO-1/2: gradients and Adam moments of the trainable weights are partitioned over the ranks
  (and the moments optionally parked in host RAM: `offload_optimizer_device: cpu`); every rank
  still holds the whole frozen base. Gradients are reduced inside every backward pass, so every
  rank runs the same number of them (`Distributed.partitions_state`, `rl/update.py`).
- ZeRO-3: every weight is partitioned as well (optionally in host RAM: `offload_param_device:
  cpu`) and gathered one module at a time for each forward pass, so forward passes are
  collectives too (`Distributed.shards_parameters`): generation is synced over ranks and every
  rank evaluates, as under FSDP.

How the loop drives the engine: every training forward pass runs through it (`forward(fn)`: the
engine's forward hooks and ZeRO-3 prefetching need it to see the pass), backward through
`engine.backward`, and one `engine.step()` per mini-batch. Gradient accumulation is the caller's
(`managed_gradient_accumulation: false`): the number of micro-batches of a mini-batch varies, and
the step is where the loop says. DeepSpeed averages gradients over ranks; each rank's loss is
already its share of the global token mean (rl/update.py), so it is scaled by the world size to
make the average the sum a single process computes.

Checkpoints keep the one-process format (full fp32 tensors of the trainable weights and a torch
AdamW state dict), gathered from the partitions with DeepSpeed's tensor-fragment API, so a ZeRO
run resumes under one process, DDP or FSDP and the other way round.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
from torch import nn

from clinical_rlhf.errors import CheckpointError, ConfigError

ADAM_MOMENTS = ("exp_avg", "exp_avg_sq")


@dataclass(frozen=True)
class ZeroOptions:
    """What the trainer honours of the ACCELERATE_DEEPSPEED_* variables `accelerate launch`
    exports from a DeepSpeed config."""

    stage: int = 2
    """ZeRO stage: 1 (Adam moments), 2 (+ gradients) or 3 (+ weights) partitioned over the ranks."""
    offload_optimizer: str = "none"
    """none or cpu: where the Adam moments (and fp32 master weights) of the trainable part live."""
    offload_params: str = "none"
    """none or cpu (ZeRO-3 only): where the partitioned weights live between forward passes."""
    mixed_precision: str = "no"
    """no or bf16: bf16 casts the model to bf16 and keeps fp32 master weights of the trainable part."""


def zero_options(environ: dict[str, str] | None = None, *, max_grad_norm: float | None = None) -> ZeroOptions:
    """Read (and validate) the launcher's DeepSpeed variables; an option this trainer does not do is
    refused with the key to change. `max_grad_norm` (training.ppo.max_grad_norm) must agree with
    the config's gradient_clipping, so that a user who edits one is not silently overruled."""
    env = os.environ if environ is None else environ
    where = "the DeepSpeed accelerate config (config/accelerate/deepspeed_*.yaml)"
    if env.get("ACCELERATE_DEEPSPEED_CONFIG_FILE", "none").lower() not in ("", "none"):
        raise ConfigError(f"{where}: deepspeed_config_file is not read by the PPO trainer, which builds the DeepSpeed "
                          f"config itself; remove it and set zero_stage, offload_optimizer_device and "
                          f"offload_param_device in the accelerate config instead")
    stage_text = env.get("ACCELERATE_DEEPSPEED_ZERO_STAGE", "2")
    if stage_text not in ("1", "2", "3"):
        raise ConfigError(f"{where}: zero_stage {stage_text} is not supported by the PPO trainer; set it to 1, 2 or 3 "
                          f"(0 is plain data parallelism: use config/accelerate/ddp.yaml)")
    stage = int(stage_text)
    offload_optimizer = env.get("ACCELERATE_DEEPSPEED_OFFLOAD_OPTIMIZER_DEVICE", "none").lower()
    offload_params = env.get("ACCELERATE_DEEPSPEED_OFFLOAD_PARAM_DEVICE", "none").lower()
    for key, value in (("offload_optimizer_device", offload_optimizer), ("offload_param_device", offload_params)):
        if value not in ("none", "cpu"):
            raise ConfigError(f"{where}: {key}: {value} is not supported by the PPO trainer (NVMe offload is "
                              f"untested here); set it to none or cpu")
    if offload_params != "none" and stage != 3:
        raise ConfigError(f"{where}: offload_param_device: {offload_params} needs zero_stage: 3 (only ZeRO-3 "
                          f"partitions the weights); set offload_param_device: none or zero_stage: 3")
    if env.get("ACCELERATE_DEEPSPEED_ZERO3_INIT", "false").lower() == "true":
        raise ConfigError(f"{where}: zero3_init_flag: true is not supported by the PPO trainer, which loads the model "
                          f"with its own factory and partitions it afterwards; set zero3_init_flag: false "
                          f"(docs/distributed.md: host memory while loading)")
    accumulation = env.get("ACCELERATE_GRADIENT_ACCUMULATION_STEPS", "1")
    if accumulation not in ("", "1"):
        raise ConfigError(f"{where}: gradient_accumulation_steps: {accumulation} is not used by the PPO trainer, which "
                          f"accumulates over training.ppo.micro_batch_size itself; set it to 1")
    clipping = env.get("ACCELERATE_GRADIENT_CLIPPING", "none").lower()
    if max_grad_norm is not None and clipping not in ("", "none") and float(clipping) != float(max_grad_norm):
        raise ConfigError(f"{where}: gradient_clipping: {clipping} differs from training.ppo.max_grad_norm = "
                          f"{max_grad_norm}; the trainer clips at training.ppo.max_grad_norm, so set both to the "
                          f"same value")
    precision = env.get("ACCELERATE_MIXED_PRECISION", "no").lower()
    if precision not in ("no", "bf16"):
        raise ConfigError(f"{where}: mixed_precision: {precision} is not supported with DeepSpeed by the PPO trainer "
                          f"(fp16 loss scaling skips steps); set mixed_precision: bf16 or no")
    return ZeroOptions(stage=stage, offload_optimizer=offload_optimizer, offload_params=offload_params,
                       mixed_precision=precision)


def deepspeed_config(options: ZeroOptions, max_grad_norm: float) -> dict:
    """The DeepSpeed config the engine is built with. Batch sizes are nominal (one micro-batch per
    rank per step): the loop cuts its own batches and calls `step()` itself."""
    zero: dict = {"stage": options.stage}
    if options.offload_optimizer == "cpu":
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": torch.cuda.is_available()}
    if options.offload_params == "cpu":
        zero["offload_param"] = {"device": "cpu", "pin_memory": torch.cuda.is_available()}
    return {
        "train_micro_batch_size_per_gpu": 1,
        "gradient_accumulation_steps": 1,
        "managed_gradient_accumulation": False,
        "gradient_clipping": float(max_grad_norm),
        "zero_optimization": zero,
        "bf16": {"enabled": options.mixed_precision == "bf16"},
        # The trainer's own torch AdamW (same maths as one process). With offload it runs on the
        # CPU over the trainable part only, which under LoRA is small enough for it not to matter.
        "zero_allow_untested_optimizer": True,
        "zero_force_ds_cpu_optimizer": False,
        "steps_per_print": 2**31 - 1,
        "wall_clock_breakdown": False,
    }


class _Passthrough(nn.Module):
    """The engine's module: holds every model of the bundle (so ZeRO sees all their weights) and
    runs whatever computation the loop hands it, so that computation is the engine's forward."""

    def __init__(self, modules: dict[str, nn.Module]) -> None:
        super().__init__()
        for name, module in modules.items():
            self.add_module(name, module)

    def forward(self, compute):
        return compute()


class ZeroEngine:
    """The DeepSpeed engine around a bundle, with the few operations the trainer needs: forward,
    backward and step for the update; full-tensor weights and moments for checkpoints.

    Build it on every rank, once, after the ranks hold identical trainable weights and with the
    trainer's torch AdamW (its `param_groups` stay the ones the learning-rate scheduler sets).
    """

    def __init__(self, bundle, optimizer: torch.optim.Optimizer, distributed, options: ZeroOptions, *,
                 max_grad_norm: float) -> None:
        import deepspeed

        logging.getLogger("DeepSpeed").setLevel(logging.WARNING)
        self.bundle, self.options = bundle, options
        self.world_size, self.rank = distributed.world_size, distributed.rank
        self.optimizer = optimizer
        self.named = list(bundle.named_trainable_parameters())
        modules = {"policy": bundle.model}
        if bundle.value_model is not None:
            modules["value_model"] = bundle.value_model
        else:
            modules["value_head"] = bundle.value_head
        if bundle.reference_copy is not None:  # without LoRA, ZeRO-3 must partition the frozen copy too
            modules["reference"] = bundle.reference_copy
        self.engine, self.zero_optimizer, _, _ = deepspeed.initialize(
            model=_Passthrough(modules), optimizer=optimizer, model_parameters=[p for _, p in self.named],
            # None: use the launcher's process group, or make one of a single process
            config=deepspeed_config(options, max_grad_norm), dist_init_required=None)
        if options.stage == 3:
            # transformers' generate() turns `synced_gpus` on for a module marked so: a rank
            # whose answers ended keeps running forward passes with the others.
            for module in modules.values():
                causal = module.get_base_model() if hasattr(module, "get_base_model") else module
                causal._is_fsdp_managed_module = True

    # ------------------------------------------------------------------ the update

    def forward(self, compute):
        """Run `compute()` (one micro-batch's forward pass and loss) as the engine's forward."""
        return self.engine(compute)

    def backward(self, loss: torch.Tensor) -> None:
        """Accumulate this micro-batch's gradients; scaled by the world size because DeepSpeed
        averages over ranks where the loop's token-mean shares must be summed."""
        self.engine.backward(loss * self.world_size, scale_wrt_gas=False)

    def step(self) -> float:
        """Reduce, clip at training.ppo.max_grad_norm, take the Adam step; returns the global
        gradient norm before clipping."""
        self.engine.step()
        norm = self.engine.get_global_grad_norm()
        return float(norm) if norm is not None else 0.0

    def zero_grad(self) -> None:
        self.engine.zero_grad()

    # ------------------------------------------------------------------ checkpoints (collectives)

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Full fp32 CPU tensors of every trainable weight, in `bundle.trainable_state_dict()`'s
        format. A collective: every rank must call it."""
        from deepspeed.utils import safe_get_full_fp32_param

        return {name: safe_get_full_fp32_param(parameter).detach().to("cpu", torch.float32, copy=True)
                for name, parameter in self.named}

    def load_trainable_state_dict(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Restore full tensors into the fp32 master partitions and the model's own weights (on
        every rank). Keys and full shapes are checked first, as the bundle's own loader does."""
        import deepspeed

        self.bundle.check_trainable_state_dict(state_dict, shapes={name: tuple(p.ds_shape) if hasattr(p, "ds_shape")
                                                                  else tuple(p.shape) for name, p in self.named})
        for name, parameter in self.named:
            value = state_dict[name].to(torch.float32)
            self._set_full(parameter, value, None)
            with deepspeed.zero.GatheredParameters([parameter], modifier_rank=0), torch.no_grad():
                parameter.copy_(value.to(parameter.device, parameter.dtype))

    def optimizer_state_dict(self) -> dict:
        """The Adam moments as a one-process torch AdamW `state_dict()`: one entry per trainable
        weight, in `trainable_parameters()` order. A collective: every rank must call it."""
        from deepspeed.utils import safe_get_full_optimizer_state

        step = self._step_count()
        state = {}
        if step is not None:
            for index, (_, parameter) in enumerate(self.named):
                state[index] = {"step": torch.tensor(float(step))} | {
                    key: safe_get_full_optimizer_state(parameter, key).detach().to("cpu", torch.float32, copy=True)
                    for key in ADAM_MOMENTS}
        groups = [{key: value for key, value in group.items() if key != "params"}
                  | {"params": list(range(len(self.named)))} for group in self.optimizer.param_groups[:1]]
        return {"state": state, "param_groups": groups}

    def load_optimizer_state_dict(self, state_dict: dict) -> None:
        """Restore a one-process AdamW `state_dict()` (from any run: 1 process, DDP, FSDP or ZeRO).
        A weight without saved moments (it never had a gradient) gets zeros, which leaves it
        where a single process would: Adam skips it there and moves it by 0 here."""
        saved = state_dict["state"]
        steps = {float(entry["step"]) for entry in saved.values() if "step" in entry}
        if len(steps) > 1:
            raise CheckpointError(f"the checkpoint's Adam state has different step counts per weight ({sorted(steps)}); "
                                  f"DeepSpeed keeps one per parameter group, resume it with config/accelerate/ddp.yaml")
        for group, saved_group in zip(self.optimizer.param_groups, state_dict["param_groups"]):
            group.update({key: value for key, value in saved_group.items() if key != "params"})
        if not saved:
            return
        self._ensure_optimizer_state()
        for index, (_, parameter) in enumerate(self.named):
            entry = saved.get(index) or saved.get(str(index)) or {}
            for key in ADAM_MOMENTS:
                value = entry.get(key)
                value = torch.zeros(tuple(getattr(parameter, "ds_shape", parameter.shape))) if value is None else value
                self._set_full(parameter, value.to(torch.float32), key)
        self._set_step_count(steps.pop())

    # ------------------------------------------------------------------ DeepSpeed internals, in one place

    def _set_full(self, parameter: nn.Parameter, value: torch.Tensor, key: str | None) -> None:
        """Write a full tensor into this rank's slice of the fp32 master weight (`key` None) or of
        an Adam moment. Under ZeRO-3 the slice is cut here: DeepSpeed's full-tensor setter reads
        past the end of a weight whose size does not split evenly over the ranks (the last
        rank's partition is padded)."""
        from deepspeed.utils import (safe_set_full_fp32_param, safe_set_full_optimizer_state,
                                     safe_set_local_fp32_param, safe_set_local_optimizer_state)

        device = torch.device("cpu") if self.options.offload_optimizer == "cpu" else self.bundle.device
        value = value.to(device)
        if hasattr(parameter, "ds_tensor"):  # ZeRO-3: rank r holds elements [r * size, (r + 1) * size)
            size = parameter.ds_tensor.numel()
            padded = torch.zeros(size * self.world_size, dtype=value.dtype, device=device)
            padded[:value.numel()] = value.flatten()
            local = padded[self.rank * size:(self.rank + 1) * size]
            if key is None:
                safe_set_local_fp32_param(parameter, local)
            else:
                safe_set_local_optimizer_state(parameter, local, key)
        elif key is None:
            safe_set_full_fp32_param(parameter, value)
        else:
            safe_set_full_optimizer_state(parameter, value, key)

    def _flat_partitions(self) -> list[torch.Tensor]:
        """This rank's fp32 flat partitions, one per parameter group: what DeepSpeed hands the
        torch AdamW (which keys its state by them; ZeRO-3 lists them in its param_groups only
        while it steps)."""
        flats = getattr(self.zero_optimizer, "fp32_partitioned_groups_flat", None)  # ZeRO-3
        if flats is None:
            flats = self.zero_optimizer.single_partition_of_fp32_groups  # ZeRO-1/2
        return list(flats)

    def _base_states(self) -> list[dict]:
        """The torch AdamW state of each flat partition (empty before the first step)."""
        state = self.zero_optimizer.optimizer.state
        return [state[flat] for flat in self._flat_partitions() if flat in state]

    def _step_count(self) -> float | None:
        states = [state for state in self._base_states() if "step" in state]
        return float(states[0]["step"]) if states else None

    def _ensure_optimizer_state(self) -> None:
        """Adam's moments exist only after a first step: create them (zeros) where they are still
        missing, so that a checkpoint's moments can be written into them."""
        state = self.zero_optimizer.optimizer.state
        for flat in self._flat_partitions():
            entry = state[flat]
            entry.setdefault("step", torch.tensor(0.0))
            for key in ADAM_MOMENTS:
                if key not in entry:
                    entry[key] = torch.zeros_like(flat, memory_format=torch.preserve_format)
        # ZeRO-1/2 map each weight's slice of the moments only once they exist (normally after the
        # first step); ZeRO-3 reads them from the optimizer state directly.
        link = getattr(self.zero_optimizer, "_lazy_init_hp_params_optimizer_state", None)
        if link is not None:
            link()

    def _set_step_count(self, step: float) -> None:
        for state in self._base_states():
            state["step"] = torch.tensor(step) if isinstance(state.get("step"), torch.Tensor) else step
