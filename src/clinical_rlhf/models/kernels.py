"""Cheaper kernels for the same function: what a small model's forward and backward spend their
time on when each op is small.

On the demo-sized GPT-2 an update pass is dominated by elementwise ops over the MLP's
`[B, L, 4H]` activations, not by matrix products (benchmarks/ppo_update_parts.py). Two changes
keep the maths and cut the op count:

- `fuse_gelu`: GPT-2's `gelu_new` is transformers' `NewGELUActivation`, the tanh approximation
  written as eight tensor ops in Python (`0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))`),
  each a pass over the activations forward and more backward. torch has the same formula as one
  kernel (`gelu(x, approximate="tanh")`, transformers' `gelu_pytorch_tanh`, which transformers
  documents as the faster equivalent). Outputs and gradients agree to float rounding (~1e-7).
- `merged_lora`: while sampling (no grad, weights fixed for the whole `generate`), each LoRA
  layer runs as one matrix product with W + s * (B A)^T computed once, instead of the base
  product, two low-rank products, a scale and an add per token through peft's Python.
  Equal to peft's forward up to float rounding.
- `fused_lora`: with grad (the update's passes), the LoRA update is added inside the low-rank
  product's GEMM (`addmm(base(x), A x, B^T, alpha=s)`) instead of a scale and an add over the
  `[B, L, out]` output forward and again backward; the scale then falls on the rank-r factors.
  Equal to peft's forward up to float rounding (bit for bit when s is a power of two).
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterator

import torch
from torch import nn


def fuse_gelu(model: nn.Module) -> int:
    """Replace every `NewGELUActivation` in `model` by `GELUTanh` (torch's fused kernel of the same
    tanh approximation); returns how many were replaced. Other activations are left alone
    (BioGPT's `gelu` and Llama's `silu` are already one kernel each).

    Naive equivalent it must match (to float rounding):
        0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))
    """
    from transformers.activations import GELUTanh, NewGELUActivation

    swaps = [(parent, name) for parent in model.modules() for name, child in parent.named_children()
             if type(child) is NewGELUActivation]
    for parent, name in swaps:
        setattr(parent, name, GELUTanh())
    return len(swaps)


def _mergeable(layer) -> bool:
    """A plain, active, single-adapter LoRA layer over an unsharded float Linear or GPT-2 Conv1D:
    the case `merged_lora` handles (anything else keeps peft's forward)."""
    from peft.tuners.lora.layer import Linear as LoraLinear
    from transformers.pytorch_utils import Conv1D

    if type(layer) is not LoraLinear or layer.disable_adapters or layer.merged or len(layer.active_adapters) != 1:
        return False
    name = layer.active_adapters[0]
    base = layer.base_layer
    if (name not in layer.lora_A or name in layer.lora_variant or layer.lora_bias.get(name, False)
            or not isinstance(layer.lora_dropout[name], nn.Identity) or type(base) not in (nn.Linear, Conv1D)):
        return False
    tensors = [base.weight, layer.lora_A[name].weight, layer.lora_B[name].weight]
    tensors += [base.bias] if base.bias is not None else []
    # FSDP's DTensors and ZeRO-3's partitioned parameters hold a shard, not the matrix
    return all(type(t.data) is torch.Tensor and t.is_floating_point() and t.numel() > 0 and not hasattr(t, "ds_id")
               for t in tensors)


def _merged_weight(layer) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(weight as `addmm`'s second operand [in, out], bias) of base + LoRA update."""
    from transformers.pytorch_utils import Conv1D

    name = layer.active_adapters[0]
    delta = (layer.lora_B[name].weight @ layer.lora_A[name].weight) * layer.scaling[name]  # [out, in]
    base = layer.base_layer
    if type(base) is Conv1D:  # weight stored [in, out]
        return base.weight + delta.t().to(base.weight.dtype), base.bias
    return (base.weight + delta.to(base.weight.dtype)).t(), base.bias


def _merged_forward(weight: torch.Tensor, bias: torch.Tensor | None):
    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        if torch.is_grad_enabled() or self.disable_adapters:  # a pass the merge does not serve: peft's own
            return type(self).forward(self, x, *args, **kwargs)
        flat = x.reshape(-1, x.shape[-1]).to(weight.dtype)
        out = torch.addmm(bias, flat, weight) if bias is not None else flat @ weight
        return out.view(*x.shape[:-1], weight.shape[1])
    return forward


@contextlib.contextmanager
def merged_lora(model: nn.Module) -> Iterator[int]:
    """Within the block, every mergeable LoRA layer of `model` (see `_mergeable`) computes
    `x @ (W + s * (B A)^T) + b` with the merged matrix built once on entry; on exit peft's forward
    is back. The base weights are never written (peft's `merge_adapter`/`unmerge_adapter` would
    add and subtract the update in place, and the rounding of that round trip would move the
    reference policy a little at every rollout). It serves no-grad passes with the adapter on;
    a pass with grad (gradients must reach A and B) or with the adapter disabled runs peft's
    forward. Yields how many layers were merged.

    Naive equivalent, equal up to float rounding (peft's vanilla LoRA forward):
        base(x) + lora_B(lora_A(x)) * scaling
    """
    layers = [module for module in model.modules() if _mergeable(module)]
    try:
        with torch.no_grad():
            for layer in layers:
                layer.forward = types.MethodType(_merged_forward(*_merged_weight(layer)), layer)
        yield len(layers)
    finally:
        for layer in layers:
            layer.__dict__.pop("forward", None)


def _fused_forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    if self.disable_adapters:  # the reference pass: the base layer alone, as peft does
        return type(self).forward(self, x, *args, **kwargs)
    name = self.active_adapters[0]
    result = self.base_layer(x)
    low_rank = nn.functional.linear(x.to(self.lora_A[name].weight.dtype), self.lora_A[name].weight)
    fused = torch.addmm(result.reshape(-1, result.shape[-1]), low_rank.reshape(-1, low_rank.shape[-1]),
                        self.lora_B[name].weight.t().to(result.dtype), alpha=self.scaling[name])
    return fused.view(result.shape)


@contextlib.contextmanager
def fused_lora(model: nn.Module) -> Iterator[int]:
    """Within the block, every mergeable LoRA layer of `model` (see `_mergeable`) adds its update
    inside the GEMM of the low-rank product: `addmm(base(x), A x, B^T, alpha=s)`. Gradients reach
    A and B as through peft's forward; a pass with the adapter disabled runs peft's forward.
    Yields how many layers were fused.

    Not under gradient checkpointing: the backward recomputes the forward after the block has
    closed, with peft's forward, and torch refuses a recomputation whose graph differs.

    Naive equivalent, equal up to float rounding (peft's vanilla LoRA forward):
        base(x) + lora_B(lora_A(x)) * scaling
    """
    modules = list(model.modules())
    checkpointed = any(getattr(module, "gradient_checkpointing", False) is True for module in modules)
    layers = [] if checkpointed else [module for module in modules if _mergeable(module)]
    try:
        for layer in layers:
            layer.forward = types.MethodType(_fused_forward, layer)
        yield len(layers)
    finally:
        for layer in layers:
            layer.__dict__.pop("forward", None)
