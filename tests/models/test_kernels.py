"""Cheaper kernels compute the same function (models/kernels.py): GPT-2's `gelu_new` through
torch's fused tanh-GELU, LoRA layers merged for sampling and their update added inside the
low-rank GEMM for the update's passes. Outputs and gradients equal the
previous implementation's to 1e-6; the base weights are never written."""

from __future__ import annotations

import contextlib
import copy
import math

import pytest
import torch
from transformers import AutoModelForCausalLM
from transformers.activations import GELUTanh, NewGELUActivation

from clinical_rlhf.models import build_policy
from clinical_rlhf.models.kernels import fuse_gelu, fused_lora, merged_lora


def test_the_fused_gelu_is_gpt2s_gelu_new_in_value_and_gradient():
    x = torch.linspace(-6.0, 6.0, 4001, dtype=torch.float32).requires_grad_(True)
    naive = 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))
    (expected_grad,) = torch.autograd.grad(naive.sum(), x)
    fused = GELUTanh()(x)
    (grad,) = torch.autograd.grad(fused.sum(), x)
    torch.testing.assert_close(fused, naive, atol=1e-6, rtol=0)
    inner = x.detach().abs() <= 5.0
    torch.testing.assert_close(grad[inner], expected_grad[inner], atol=1e-6, rtol=0)
    # Below -5 the naive chain rule's tanh rounds to -1 in float32 and its gradient to 0; the
    # fused kernel keeps the true value, itself of order 1e-6 there
    assert (grad[~inner] - expected_grad[~inner]).abs().max() < 2e-6


def test_fuse_gelu_keeps_gpt2s_logits_and_gradients(tiny_gpt2_dir):
    previous = AutoModelForCausalLM.from_pretrained(tiny_gpt2_dir)
    fused = copy.deepcopy(previous)
    assert fuse_gelu(fused) == previous.config.n_layer
    assert not any(isinstance(m, NewGELUActivation) for m in fused.modules())
    ids = torch.randint(0, previous.config.vocab_size, (3, 11), generator=torch.Generator().manual_seed(0))
    results = []
    for model in (previous, fused):
        logits = model(input_ids=ids).logits
        (logits.float().pow(2).mean()).backward()
        results.append((logits.detach(), [p.grad.clone() for p in model.parameters()]))
    (expected, expected_grads), (logits, grads) = results
    torch.testing.assert_close(logits, expected, atol=1e-6, rtol=0)
    assert max((a - b).abs().max().item() for a, b in zip(grads, expected_grads)) < 1e-6
    assert max(g.abs().max().item() for g in expected_grads) > 1e-3  # not a comparison of zeros


def test_the_factory_builds_gpt2_with_the_fused_gelu(tiny_policy):
    activations = [m for m in tiny_policy.model.modules() if isinstance(m, (NewGELUActivation, GELUTanh))]
    assert activations and all(type(m) is GELUTanh for m in activations)


@pytest.fixture
def moved_bundle(tiny_gpt2_config):
    """A bundle whose adapter is not the identity (a fresh LoRA B is 0)."""
    bundle = build_policy(tiny_gpt2_config)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in bundle.trainable_parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.1)
    return bundle


def _logits(bundle, ids):
    return bundle.model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False).logits


def test_merged_lora_keeps_the_logits_and_never_writes_the_base(moved_bundle):
    # In float64: (W + sBA)x sums in another order than Wx + s·B(Ax), and float32 rounding of
    # logits of size ~10 reaches 1e-6 on its own; the maths must agree far below that.
    moved_bundle.model.double()
    ids = torch.randint(0, 400, (3, 9), generator=torch.Generator().manual_seed(2))
    base = {name: p.detach().clone() for name, p in moved_bundle.model.named_parameters()}
    with torch.no_grad():
        expected = _logits(moved_bundle, ids)
        with merged_lora(moved_bundle.model) as merged:
            logits = _logits(moved_bundle, ids)
    assert merged == 4 * moved_bundle.model.config.n_layer  # c_attn, c_proj, c_fc, mlp c_proj per block
    torch.testing.assert_close(logits, expected, atol=1e-6, rtol=0)
    for name, p in moved_bundle.model.named_parameters():
        assert torch.equal(p, base[name]), name
    assert not any("forward" in vars(m) for m in moved_bundle.model.modules())  # peft's forward is back


def test_merged_lora_leaves_passes_with_grad_and_the_reference_to_peft(moved_bundle):
    ids = torch.randint(0, 400, (2, 7), generator=torch.Generator().manual_seed(3))
    with torch.no_grad(), moved_bundle.model.disable_adapter():
        reference = _logits(moved_bundle, ids)
    expected = _logits(moved_bundle, ids)
    with merged_lora(moved_bundle.model):
        with_grad = _logits(moved_bundle, ids)  # grad on: peft's forward, bit for bit
        with torch.no_grad(), moved_bundle.model.disable_adapter():
            disabled = _logits(moved_bundle, ids)
    assert torch.equal(with_grad, expected) and torch.equal(disabled, reference)
    with_grad.pow(2).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0
               for name, p in moved_bundle.model.named_parameters() if "lora_" in name)


def test_fused_lora_keeps_the_logits_and_the_adapters_gradients(moved_bundle):
    ids = torch.randint(0, 400, (3, 9), generator=torch.Generator().manual_seed(4))
    lora = [p for name, p in moved_bundle.model.named_parameters() if "lora_" in name]
    results = []
    for fused in (False, True):
        moved_bundle.model.zero_grad(set_to_none=True)
        with fused_lora(moved_bundle.model) if fused else contextlib.nullcontext(0) as count:
            logits = _logits(moved_bundle, ids)
            with torch.no_grad(), moved_bundle.model.disable_adapter():
                reference = _logits(moved_bundle, ids)
        logits.pow(2).mean().backward()
        results.append((count, logits.detach(), reference, [p.grad.clone() for p in lora]))
    (_, expected, expected_reference, expected_grads), (count, logits, reference, grads) = results
    assert count == 4 * moved_bundle.model.config.n_layer
    torch.testing.assert_close(logits, expected, atol=1e-6, rtol=0)
    assert torch.equal(reference, expected_reference)  # adapter disabled: peft's own forward
    assert max((a - b).abs().max().item() for a, b in zip(grads, expected_grads)) < 1e-6
    assert max(g.abs().max().item() for g in expected_grads) > 1e-3
    assert not any("forward" in vars(m) for m in moved_bundle.model.modules())
