"""`build_policy` on tiny GPT-2 / Llama / Mistral / BioGPT models: LoRA, value head, quantization,
the disabled-adapter reference, checkpoint state, and the errors a user can fix."""

from __future__ import annotations

import logging

import pytest
import torch

from clinical_rlhf.errors import CheckpointError, ConfigError, ModelNotFoundError
from clinical_rlhf.models import build_policy, get_model_entry
from clinical_rlhf.models.factory import _adaptable_module_names
from clinical_rlhf.models.registry import LORA_TARGETS
from clinical_rlhf.models.tiny import ARCHITECTURES, tiny_model_config

PRECISIONS = {
    "fp32": {},
    "int8": {"load_in_8bit": True},
    "nf4": {"load_in_4bit": True, "bnb_4bit_compute_dtype": "float32"},
}


def _batch(tokenizer):
    texts = ["Chest pain with sweating needs an ECG.", "Take paracetamol."]
    return tokenizer(texts, return_tensors="pt", padding=True)  # left-padded


def _base_model(directory, precision: str):
    """The same checkpoint loaded plainly (same quantization), for reference comparisons, with the
    factory's one kernel swap (`kernels.fuse_gelu`: GPT-2's gelu_new as torch's fused kernel)."""
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    from clinical_rlhf.models.kernels import fuse_gelu

    if precision == "fp32":
        model = AutoModelForCausalLM.from_pretrained(directory).eval()
        fuse_gelu(model)
        return model
    if precision == "int8":
        quantization = BitsAndBytesConfig(load_in_8bit=True)
    else:  # the config defaults: NF4 with double quantization
        quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                          bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=torch.float32)
    model = AutoModelForCausalLM.from_pretrained(directory, quantization_config=quantization,
                                                 device_map={"": "cpu"}).eval()
    fuse_gelu(model)
    return model


def _perturb_lora(bundle) -> None:
    """Make the adapter do something (LoRA B starts at zero, so a fresh adapter is the identity)."""
    with torch.no_grad():
        for name, parameter in bundle.model.named_parameters():
            if "lora_B" in name:
                parameter.add_(0.05)


@pytest.mark.parametrize("precision", list(PRECISIONS))
@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_policy_with_lora_and_value_head(tiny_model_dir, architecture, precision) -> None:
    directory = tiny_model_dir(architecture)
    bundle = build_policy(tiny_model_config(directory, model_loading=PRECISIONS[precision]))
    assert bundle.info.precision == precision
    assert bundle.tokenizer.padding_side == "left" and bundle.tokenizer.pad_token is not None
    batch = _batch(bundle.tokenizer)
    logits, values = bundle.forward(batch["input_ids"], batch["attention_mask"])
    assert logits.shape[:2] == values.shape == batch["input_ids"].shape
    (logits.float().mean() + values.mean()).backward()
    trainable = bundle.trainable_parameters()
    assert all(p.grad is not None for p in trainable)
    names = list(bundle.trainable_state_dict())
    assert all("lora_" in n for n in names if n.startswith("policy."))
    assert any(n.startswith("value_head.") for n in names)

    _perturb_lora(bundle)
    base = _base_model(directory, precision)
    position_ids = (batch["attention_mask"].cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        expected = base(**batch, position_ids=position_ids).logits
        policy = bundle.logits(batch["input_ids"], batch["attention_mask"])
    with bundle.reference():
        reference = bundle.logits(batch["input_ids"], batch["attention_mask"])
    assert torch.equal(reference, expected)  # exactly the base model
    assert not torch.allclose(policy, expected)  # while the adapter is on, it is not


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_registry_lora_targets_exist_in_each_architecture(tiny_model_dir, architecture) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir(architecture))
    assert set(LORA_TARGETS[architecture]) <= _adaptable_module_names(model)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_values_read_what_the_lm_head_reads_the_last_hidden_state(tiny_model_dir, architecture) -> None:
    """`forward` takes the value head's input from the LM head's (a pre-hook) rather than from
    `output_hidden_states`: the same tensor, so the same values bit for bit, with and without
    `last` (BioGPT's forward has no `logits_to_keep`; the bundle slices after the pass)."""
    bundle = build_policy(tiny_model_config(tiny_model_dir(architecture)))
    with torch.no_grad():
        bundle.value_head.summary.weight.normal_()
    batch = _batch(bundle.tokenizer)
    position_ids = (batch["attention_mask"].cumsum(-1) - 1).clamp(min=0)
    for last in (None, 3):
        logits, values = bundle.forward(batch["input_ids"], batch["attention_mask"], last=last)
        with torch.no_grad():
            outputs = bundle.model(**batch, position_ids=position_ids, output_hidden_states=True, use_cache=False)
        tail = slice(-(last or 0), None)
        assert torch.equal(values, bundle.value_head(outputs.hidden_states[-1][:, tail]))
        assert logits.shape[:2] == values.shape


def test_left_padding_does_not_change_the_logits(tiny_model_dir) -> None:
    bundle = build_policy(tiny_model_config(tiny_model_dir("gpt2")))
    tokenizer = bundle.tokenizer
    alone = tokenizer(["Take paracetamol."], return_tensors="pt")
    padded = _batch(tokenizer)
    length = alone["input_ids"].shape[1]
    with torch.no_grad():
        logits_alone, values_alone = bundle.forward(alone["input_ids"], alone["attention_mask"])
        logits_padded, values_padded = bundle.forward(padded["input_ids"], padded["attention_mask"])
    torch.testing.assert_close(logits_padded[1, -length:], logits_alone[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(values_padded[1, -length:], values_alone[0])


def test_trainable_state_round_trip_is_strict(tiny_gpt2_dir) -> None:
    cfg = tiny_model_config(tiny_gpt2_dir)
    trained, fresh = build_policy(cfg), build_policy(cfg)
    _perturb_lora(trained)
    with torch.no_grad():
        trained.value_head.summary.weight.add_(0.3)
    state = trained.trainable_state_dict()
    fresh.load_trainable_state_dict(state)
    batch = _batch(fresh.tokenizer)
    with torch.no_grad():
        for a, b in zip(trained.forward(**batch), fresh.forward(**batch)):
            assert torch.equal(a, b)
    with pytest.raises(CheckpointError, match="1 missing"):
        fresh.load_trainable_state_dict({k: v for k, v in list(state.items())[1:]})
    other_rank = build_policy(tiny_model_config(tiny_gpt2_dir, model_loading={"lora_r": 2}))
    with pytest.raises(CheckpointError, match="lora_r"):
        other_rank.load_trainable_state_dict(state)


def test_separate_value_model_has_its_own_backbone(tiny_llama_dir) -> None:
    bundle = build_policy(tiny_model_config(tiny_llama_dir, model_loading={"shared_value_base": False}))
    assert bundle.value_model is not None and bundle.value_head is bundle.value_model.head
    names = list(bundle.trainable_state_dict())
    assert any(n.startswith("value_model.backbone.") and "lora_" in n for n in names)
    batch = _batch(bundle.tokenizer)
    _, values = bundle.forward(batch["input_ids"], batch["attention_mask"])
    values.sum().backward()
    policy_grads = [p.grad for n, p in bundle.model.named_parameters() if p.requires_grad]
    assert all(g is None for g in policy_grads)  # value loss cannot reach the policy


def test_without_lora_the_reference_is_a_frozen_copy(tiny_gpt2_dir) -> None:
    bundle = build_policy(tiny_model_config(tiny_gpt2_dir, model_loading={"use_lora": False}))
    batch = _batch(bundle.tokenizer)
    with bundle.reference():
        before = bundle.logits(**batch)
    with torch.no_grad():
        for parameter in bundle.model.parameters():
            parameter.add_(0.01)
    with bundle.reference():
        assert torch.equal(bundle.logits(**batch), before)
        assert not any(p.requires_grad for p in bundle.model.parameters())
    assert not torch.allclose(bundle.logits(**batch), before)


@pytest.mark.parametrize("extra", [{}, {"load_in_4bit": True, "bnb_4bit_compute_dtype": "float32"}])
def test_gradient_checkpointing_trains(tiny_gpt2_dir, extra) -> None:
    loading = {"gradient_checkpointing": True, **extra}
    bundle = build_policy(tiny_model_config(tiny_gpt2_dir, model_loading=loading))
    assert bundle.model.get_base_model().is_gradient_checkpointing
    bundle.train()
    logits, values = bundle.forward(**_batch(bundle.tokenizer))
    (logits.mean() + values.mean()).backward()
    assert all(p.grad is not None for p in bundle.trainable_parameters())


def test_quantization_needs_lora(tiny_gpt2_dir) -> None:
    with pytest.raises(ConfigError, match="use_lora=true"):
        build_policy(tiny_model_config(tiny_gpt2_dir, model_loading={"use_lora": False, "load_in_4bit": True}))


def test_unknown_target_module_lists_the_real_ones(tiny_gpt2_dir) -> None:
    with pytest.raises(ConfigError, match=r"\['q_proj'\] do not exist in this gpt2 model.*c_attn"):
        build_policy(tiny_model_config(tiny_gpt2_dir, model_loading={"target_modules": ["q_proj"]}))


def test_unavailable_quantization_falls_back_with_one_warning(tiny_gpt2_dir, monkeypatch, caplog) -> None:
    from clinical_rlhf.models import hardware

    monkeypatch.setattr(hardware, "bitsandbytes_usable", lambda device: (False, "bitsandbytes is not installed"))
    with caplog.at_level(logging.WARNING, logger="clinical_rlhf.models.factory"):
        bundle = build_policy(tiny_model_config(tiny_gpt2_dir, model_loading={"load_in_4bit": True}))
    assert bundle.info.precision == "fp32"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "bitsandbytes is not installed" in warnings[0].getMessage()


def test_failing_quantization_falls_back_with_one_warning(tiny_gpt2_dir, monkeypatch, caplog) -> None:
    from clinical_rlhf.models import factory

    monkeypatch.setattr(factory, "_quantization_config", lambda cfg, device: (object(), "nf4"))
    with caplog.at_level(logging.WARNING, logger="clinical_rlhf.models.factory"):
        bundle = build_policy(tiny_model_config(tiny_gpt2_dir, model_loading={"load_in_4bit": True}))
    assert bundle.info.precision == "fp32"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "nf4 quantization failed" in warnings[0].getMessage()


def test_uncached_hub_model_offline_says_how_to_get_it(monkeypatch) -> None:
    from clinical_rlhf.config import load_config

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = load_config(None, ["model.name=meditron-7b", "model.device=cpu"])
    with pytest.raises(ModelNotFoundError) as caught:
        build_policy(cfg)
    message = str(caught.value)
    assert "`meditron-7b` (epfl-llm/meditron-7b) is not in the local Hugging Face cache" in message
    assert "hf download epfl-llm/meditron-7b" in message and "hf auth login" in message
    assert "model.path" in message and "\n" not in message


def test_bad_local_paths_are_model_not_found(tmp_path) -> None:
    with pytest.raises(ModelNotFoundError, match="is not a directory"):
        build_policy(tiny_model_config(tmp_path / "absent"))
    with pytest.raises(ModelNotFoundError, match="has no config.json"):
        build_policy(tiny_model_config(tmp_path))
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ModelNotFoundError, match="could not be loaded as a transformers checkpoint"):
        build_policy(tiny_model_config(tmp_path))


def test_bundle_prompt_and_temperature_come_from_the_entry(tiny_policy) -> None:
    entry = get_model_entry("clinical-demo")
    assert tiny_policy.format_prompt("Is it safe?") == entry.format_prompt("Is it safe?")
    assert tiny_policy.temperature == entry.default_temperature
    with tiny_policy.reference(), pytest.raises(RuntimeError, match="outside bundle.reference"):
        tiny_policy.forward(**_batch(tiny_policy.tokenizer))
