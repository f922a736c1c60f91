"""Registry facts: completeness, lookup, close-match errors, counts against the architectures."""

from __future__ import annotations

import pytest

from clinical_rlhf.errors import ModelNotFoundError
from clinical_rlhf.models import get_model_entry, list_model_entries
from clinical_rlhf.models.registry import LORA_TARGETS

REQUIRED_IDS = {
    "clinical-demo", "biogpt", "biogpt-large", "biomistral-7b", "meditron-7b", "meditron-70b",
    "openbiollm-8b", "openbiollm-70b", "medalpaca-7b", "medalpaca-13b", "pmc-llama-13b",
    "llama3-med42-8b", "biomedlm",
}


def test_registry_holds_the_required_models_with_complete_entries() -> None:
    entries = list_model_entries()
    ids = [entry.id for entry in entries]
    assert len(ids) == len(set(ids)) >= 12
    assert REQUIRED_IDS <= set(ids)
    for entry in entries:
        assert entry.family in LORA_TARGETS, entry.id
        assert entry.parameters > 0 and entry.context_length >= 256, entry.id
        assert "{prompt}" in entry.prompt_template, entry.id
        assert 0.0 < entry.default_temperature <= 1.5, entry.id
        assert entry.license and entry.domain and entry.best_use, entry.id
        assert (entry.hub_id is None) == (entry.id == "clinical-demo"), entry.id


def test_lookup_is_case_insensitive_and_accepts_hub_ids() -> None:
    assert get_model_entry("BioMistral-7B").hub_id == "BioMistral/BioMistral-7B"
    assert get_model_entry("epfl-llm/meditron-7b").id == "meditron-7b"


def test_unknown_id_names_close_matches() -> None:
    with pytest.raises(ModelNotFoundError) as caught:
        get_model_entry("biomistral7b")
    message = str(caught.value)
    assert "unknown model `biomistral7b`" in message
    assert "`biomistral-7b`" in message
    assert "list-models" in message


def test_unknown_id_without_near_match_still_says_how_to_fix() -> None:
    with pytest.raises(ModelNotFoundError, match="list-models"):
        get_model_entry("zzzz-qqqq")


def test_format_prompt_places_the_user_text_in_the_template() -> None:
    entry = get_model_entry("biomistral-7b")
    assert entry.format_prompt("  Is 8 g of paracetamol safe? ") == "[INST] Is 8 g of paracetamol safe? [/INST]"
    llama3 = get_model_entry("openbiollm-8b").format_prompt("hello")
    assert llama3.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
    assert "<|start_header_id|>user<|end_header_id|>\n\nhello<|eot_id|>" in llama3


def _meta_counts(config) -> tuple[int, int]:
    """(all parameters, input embedding + LM head) of the architecture, built without memory."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    embedding = model.get_input_embeddings().weight
    head = model.get_output_embeddings().weight
    embeddings = embedding.numel() + (0 if head is embedding else head.numel())
    return sum(parameter.numel() for parameter in model.parameters()), embeddings


@pytest.mark.parametrize("model_id, config_kwargs", [
    # Dimensions from each base model's published config.json.
    ("biogpt-large", ("biogpt", dict(vocab_size=57717, hidden_size=1600, num_hidden_layers=48,
                                     num_attention_heads=25, intermediate_size=6400, max_position_embeddings=2048))),
    ("biogpt", ("biogpt", dict(vocab_size=42384, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                              intermediate_size=4096, max_position_embeddings=1024))),
    ("biomistral-7b", ("mistral", dict(vocab_size=32000, hidden_size=4096, intermediate_size=14336,
                                       num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                                       tie_word_embeddings=False))),
    ("meditron-7b", ("llama", dict(vocab_size=32000, hidden_size=4096, intermediate_size=11008,
                                   num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32,
                                   tie_word_embeddings=False))),
    ("openbiollm-8b", ("llama", dict(vocab_size=128256, hidden_size=4096, intermediate_size=14336,
                                     num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                                     tie_word_embeddings=False))),
])
def test_parameter_counts_match_the_published_architectures(model_id, config_kwargs) -> None:
    from transformers import AutoConfig

    model_type, kwargs = config_kwargs
    entry = get_model_entry(model_id)
    assert (entry.parameters, entry.embedding_parameters) == _meta_counts(AutoConfig.for_model(model_type, **kwargs))


def test_demo_entry_counts_match_the_default_demo_settings() -> None:
    from clinical_rlhf.config import DemoModelConfig
    from clinical_rlhf.models.tiny import architecture_config

    demo = DemoModelConfig()
    config = architecture_config(demo.architecture, vocab_size=demo.vocab_size, hidden=demo.n_embd,
                                 layers=demo.n_layer, heads=demo.n_head, context_length=demo.context_length,
                                 bos_token_id=0, eos_token_id=0, pad_token_id=1)
    entry = get_model_entry("clinical-demo")
    assert (entry.parameters, entry.embedding_parameters) == _meta_counts(config)
