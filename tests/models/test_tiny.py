"""Tiny test models: real checkpoints of each architecture, deterministic, loadable by transformers."""

from __future__ import annotations

import pytest
import torch

from clinical_rlhf.models.tiny import ARCHITECTURES, build_tiny_model


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_tiny_models_load_with_the_auto_classes(tiny_model_dir, architecture) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    directory = tiny_model_dir(architecture)
    model = AutoModelForCausalLM.from_pretrained(directory)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    assert model.config.model_type == architecture
    assert model.config.vocab_size == len(tokenizer)
    assert tokenizer.pad_token_id != tokenizer.eos_token_id
    assert tokenizer.padding_side == "left"
    ids = tokenizer("Chest pain with sweating needs an ECG.")["input_ids"]
    assert tokenizer.decode(ids) == "Chest pain with sweating needs an ECG."


def test_same_seed_same_weights_other_seed_other_weights(tmp_path) -> None:
    from safetensors.torch import load_file

    first = load_file(build_tiny_model("llama", tmp_path / "a", seed=3) / "model.safetensors")
    again = load_file(build_tiny_model("llama", tmp_path / "b", seed=3) / "model.safetensors")
    other = load_file(build_tiny_model("llama", tmp_path / "c", seed=4) / "model.safetensors")
    assert first.keys() == again.keys()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_building_leaves_the_global_rng_alone(tmp_path) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_tiny_model("gpt2", tmp_path, seed=9)
    assert torch.equal(torch.rand(3), expected)


def test_unknown_architecture_is_rejected(tmp_path) -> None:
    with pytest.raises(ValueError, match="architecture must be one of"):
        build_tiny_model("t5", tmp_path)
