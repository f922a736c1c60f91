"""FSDP for the PPO trainer: every model of the bundle sharded over the ranks with PyTorch's
FSDP2 (`torch.distributed.fsdp.fully_shard`), so a rank holds 1/N of the frozen base weights,
of the LoRA and value-head weights, of their gradients and of their Adam moments.

Layout (accelerate's TRANSFORMER_BASED_WRAP): each transformer block is one FSDP unit, and the
causal LM around them (embeddings, final norm, LM head) is the root unit; a block's weights are
all-gathered just before it runs and freed after (`reshard_after_forward`). The root is the
transformers model itself, not the peft wrapper: peft calls it as a module in the forward pass
and `generate` calls it directly, so its hooks run on both paths. The value head (and the
separate critic, and the frozen reference copy without LoRA) are units of their own. Frozen and
trainable weights share a unit (FSDP2 allows it), so the LoRA matrices live next to the base
weights they adapt.

What changes for the loop (the rest is the data-parallel path of `rl/distributed.py`):

- every forward pass is a collective: every rank must run the same number of them, in the same
  order. Generation uses transformers' `synced_gpus` (a rank whose answers ended keeps stepping
  with the others); the update gives every rank the same number of micro-batches, padding a
  rank that holds fewer rows of a mini-batch with zero-weighted passes (`rl/update.py`); the
  evaluation runs on every rank; an out-of-memory error is not retried on one rank alone;
- gradients are reduce-scattered by FSDP with a SUM (divide factor 1), not all-reduced by the
  trainer: each rank's loss is already its share of the global token mean;
- checkpoints hold full (unsharded) tensors, gathered on every rank and written by rank 0, in
  the format of a one-process run: they resume under any number of processes, with or without
  FSDP (`full_optimizer_state_dict`, `shard_optimizer_state`, `PolicyBundle.trainable_state_dict`).

4-bit and 8-bit bitsandbytes weights are refused: sharding them needs bitsandbytes'
`quant_storage` dtype and a GPU (QLoRA-FSDP), which this code neither does nor tests.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from clinical_rlhf.errors import ConfigError
from clinical_rlhf.models.sharded import full_tensor, is_sharded, shard_like

if TYPE_CHECKING:  # rl.distributed imports this module (fsdp_options) to check a launch
    from clinical_rlhf.rl.distributed import Distributed

QUANTIZED = ("int8", "nf4", "fp4")


@dataclass(frozen=True)
class FsdpOptions:
    """What the trainer honours of the FSDP_* variables `accelerate launch` exports from
    config/accelerate/fsdp.yaml."""

    reshard_after_forward: bool = True
    """FULL_SHARD (true): free each block's gathered weights after its forward pass (ZeRO-3);
    SHARD_GRAD_OP (false): keep them until the backward pass (ZeRO-2-like, more memory)."""
    block_classes: tuple[str, ...] = ()
    """fsdp_transformer_layer_cls_to_wrap; empty: the model's own `_no_split_modules`."""


def fsdp_options(environ: dict[str, str] | None = None) -> FsdpOptions:
    """Read (and validate) the launcher's FSDP variables; an option this trainer does not do is
    refused with the key to change in config/accelerate/fsdp.yaml."""
    env = os.environ if environ is None else environ
    where = "config/accelerate/fsdp.yaml"
    reshard = env.get("FSDP_RESHARD_AFTER_FORWARD") or env.get("FSDP_SHARDING_STRATEGY") or "true"
    reshard = reshard.strip().upper()
    reshard = {"1": "FULL_SHARD", "TRUE": "FULL_SHARD", "FALSE": "SHARD_GRAD_OP", "2": "SHARD_GRAD_OP"}.get(reshard, reshard)
    if reshard not in ("FULL_SHARD", "SHARD_GRAD_OP"):
        raise ConfigError(f"{where}: sharding strategy {reshard} is not supported by the PPO trainer; set "
                          f"fsdp_reshard_after_forward: true (FULL_SHARD) or false (SHARD_GRAD_OP), or use "
                          f"config/accelerate/ddp.yaml for unsharded replicas")
    if env.get("FSDP_OFFLOAD_PARAMS", "false").lower() == "true":
        raise ConfigError(f"{where}: fsdp_offload_params: true is not supported by the PPO trainer (CPU offload "
                          f"is untested here); set it to false, or quantize the base (model_loading.load_in_4bit) "
                          f"with config/accelerate/ddp.yaml")
    if env.get("FSDP_ACTIVATION_CHECKPOINTING", "false").lower() == "true":
        raise ConfigError(f"{where}: fsdp_activation_checkpointing is not used by the PPO trainer; set it to false "
                          f"and set model_loading.gradient_checkpointing=true instead")
    policy = env.get("FSDP_AUTO_WRAP_POLICY", "TRANSFORMER_BASED_WRAP") or "TRANSFORMER_BASED_WRAP"
    if policy.upper() != "TRANSFORMER_BASED_WRAP":
        raise ConfigError(f"{where}: fsdp_auto_wrap_policy {policy} is not supported by the PPO trainer, which "
                          f"shards one transformer block per unit; set it to TRANSFORMER_BASED_WRAP")
    classes = tuple(name.strip() for name in env.get("FSDP_TRANSFORMER_CLS_TO_WRAP", "").split(",") if name.strip())
    return FsdpOptions(reshard_after_forward=reshard == "FULL_SHARD", block_classes=classes)


def _causal_lm(model: nn.Module) -> nn.Module:
    """The transformers model inside a peft wrapper (the model itself without LoRA)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _blocks(model: nn.Module, classes: tuple[str, ...]) -> list[nn.Module]:
    """The transformer blocks of `model`: modules of `classes`, else of the block classes every
    transformers model declares in `_no_split_modules` (found in any submodule, so a critic
    wrapping a backbone works too)."""
    names = set(classes) or {name for module in model.modules()
                             for name in (getattr(module, "_no_split_modules", None) or ())}
    found = [module for module in model.modules() if type(module).__name__ in names]
    if not found:
        raise ConfigError(f"FSDP: no transformer block of class {sorted(names) or '(none declared)'} in "
                          f"{type(_causal_lm(model)).__name__}; set fsdp_transformer_layer_cls_to_wrap in "
                          f"config/accelerate/fsdp.yaml to its block class name")
    return found


def shard_bundle(bundle, distributed: Distributed, options: FsdpOptions | None = None) -> str:
    """Shard every model of `bundle` in place over `distributed`'s ranks.

    Call it on every rank, once, after the ranks hold identical full weights (the trainer
    broadcasts rank 0's trainable ones first) and before the optimizer is built: the
    parameters become DTensors holding this rank's shard. Returns a line for the log.
    """
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    options = options or fsdp_options()
    # FSDP2 warns whenever a unit returns a view (logits slices, the value head's squeeze): only
    # an in-place op on such an output would lose its backward hook, and the loop does none
    # (tests/distributed/test_fsdp.py checks the gradients against one process).
    warnings.filterwarnings("ignore", message=r"FSDP2-wrapped module \(.*\) returned a view tensor")
    if bundle.info.precision in QUANTIZED:
        raise ConfigError(f"FSDP cannot shard {bundle.info.precision} bitsandbytes weights here (QLoRA-FSDP needs "
                          f"bnb_4bit_quant_storage and a GPU); turn model_loading.load_in_4bit/load_in_8bit off, "
                          f"or launch with config/accelerate/ddp.yaml to keep one quantized replica per GPU")
    mesh = init_device_mesh(distributed.device.type, (distributed.world_size,))
    units: list[nn.Module] = []

    def shard(module: nn.Module, *, blocks: bool) -> None:
        if blocks:
            for block in _blocks(module, options.block_classes):
                fully_shard(block, mesh=mesh, reshard_after_forward=options.reshard_after_forward)
                units.append(block)
        fully_shard(module, mesh=mesh, reshard_after_forward=options.reshard_after_forward)
        units.append(module)

    causal = _causal_lm(bundle.model)
    shard(causal, blocks=True)
    # transformers' generate() turns `synced_gpus` on for a module marked so (FSDP2 modules are
    # not recognised otherwise): a rank whose answers ended keeps running forward passes.
    causal._is_fsdp_managed_module = True
    if bundle.value_model is not None:
        shard(bundle.value_model, blocks=True)
    else:
        shard(bundle.value_head, blocks=False)
    if bundle.reference_copy is not None:
        shard(bundle.reference_copy, blocks=True)
        bundle.reference_copy._is_fsdp_managed_module = True
    for unit in units:
        # Each rank's loss is its share of the global token mean: gradients are summed, not averaged.
        unit.set_gradient_divide_factor(1.0)
        unit.set_force_sum_reduction_for_comms(True)
    frozen = [p for p in bundle.model.parameters() if not p.requires_grad]
    return (f"FSDP: {len(units)} units ({'FULL_SHARD' if options.reshard_after_forward else 'SHARD_GRAD_OP'}) "
            f"over {distributed.world_size} processes; rank {distributed.rank} holds {local_numel(frozen):,} of "
            f"{sum(p.numel() for p in frozen):,} frozen base parameters")


def local_numel(parameters: Iterator[torch.Tensor]) -> int:
    """Elements this rank actually stores (its shards; whole tensors when unsharded)."""
    return sum((p.to_local() if is_sharded(p) else p).numel() for p in parameters)


def full_optimizer_state_dict(optimizer: torch.optim.Optimizer) -> dict:
    """`optimizer.state_dict()` with every sharded moment gathered into a full tensor: the format
    of a one-process run. A collective under FSDP (every rank must call it); a plain
    `state_dict()` otherwise."""
    state = optimizer.state_dict()
    state["state"] = {index: {key: full_tensor(value) if isinstance(value, torch.Tensor) else value
                              for key, value in entry.items()}
                      for index, entry in sorted(state["state"].items())}
    return state


def shard_optimizer_state(optimizer: torch.optim.Optimizer) -> None:
    """After `optimizer.load_state_dict(full)`: cut each full moment of a sharded parameter to
    this rank's shard (the same layout as the parameter). A no-op without FSDP."""
    for group in optimizer.param_groups:
        for parameter in group["params"]:
            if not is_sharded(parameter):
                continue
            for key, value in optimizer.state.get(parameter, {}).items():
                if isinstance(value, torch.Tensor) and not is_sharded(value) and value.shape == parameter.shape:
                    optimizer.state[parameter][key] = shard_like(value, parameter)
