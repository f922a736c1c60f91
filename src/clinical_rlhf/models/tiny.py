"""Tiny randomly initialised causal LMs of the registry's architectures, built offline.

Tests across the project (factory, reward, RL, serving) need a real transformers checkpoint
on disk that loads through the same path as a Hub model, in well under a second. These are
built from the architectures' config classes with a byte-level BPE tokenizer trained locally,
then written with `save_pretrained`, so `model.path` can point at them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

from clinical_rlhf.config import config_from_mapping
from clinical_rlhf.models.tokenizer import train_bpe_tokenizer

Architecture = Literal["gpt2", "llama", "mistral", "biogpt"]
ARCHITECTURES: tuple[str, ...] = ("gpt2", "llama", "mistral", "biogpt")

SAMPLE_CLINICAL_TEXTS: tuple[str, ...] = (
    "Chest pain radiating to the left arm with sweating needs an ECG and emergency review.",
    "Metformin is the usual first-line medicine for type 2 diabetes unless kidney function is poor.",
    "Warfarin with ibuprofen raises the risk of bleeding; paracetamol is the safer analgesic.",
    "A sudden severe headache, the worst of one's life, calls for urgent assessment.",
    "Adults should not take more than four grams of paracetamol in twenty-four hours.",
    "Fever with a stiff neck and a rash that does not fade under a glass is an emergency.",
    "Blood pressure above 180/120 with headache or confusion needs same-day medical care.",
    "Amoxicillin is avoided in patients with a penicillin allergy.",
    "Shortness of breath at rest, blue lips or confusion warrant calling emergency services.",
    "Please consult your doctor or pharmacist before starting or stopping any medicine.",
)
"""Enough text for a few hundred BPE merges; tests needing specific tokens pass `texts`."""


@contextlib.contextmanager
def progress_bars_off() -> Iterator[None]:
    """Silence transformers' progress bars (a one-shard save of a small model needs none)."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def architecture_config(
    architecture: str,
    *,
    vocab_size: int,
    hidden: int,
    layers: int,
    heads: int,
    context_length: int,
    bos_token_id: int,
    eos_token_id: int,
    pad_token_id: int,
):
    """The transformers config of a small model of `architecture` (also used by the demo model)."""
    from transformers import BioGptConfig, GPT2Config, LlamaConfig, MistralConfig

    special = dict(bos_token_id=bos_token_id, eos_token_id=eos_token_id, pad_token_id=pad_token_id)
    if architecture == "gpt2":
        return GPT2Config(vocab_size=vocab_size, n_positions=context_length, n_embd=hidden,
                          n_layer=layers, n_head=heads, **special)
    if architecture in ("llama", "mistral"):
        config_class = LlamaConfig if architecture == "llama" else MistralConfig
        extra = {"sliding_window": None} if architecture == "mistral" else {}
        return config_class(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=hidden * 4,
                            num_hidden_layers=layers, num_attention_heads=heads,
                            # Grouped-query attention, as in Llama-3 and Mistral, when heads allow.
                            num_key_value_heads=heads // 2 if heads % 2 == 0 else heads,
                            max_position_embeddings=context_length, tie_word_embeddings=False,
                            **special, **extra)
    if architecture == "biogpt":
        return BioGptConfig(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=hidden * 4,
                            num_hidden_layers=layers, num_attention_heads=heads,
                            max_position_embeddings=context_length, **special)
    raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")


def build_tiny_model(
    architecture: Architecture,
    directory: Path | str,
    *,
    vocab_size: int = 512,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    context_length: int = 256,
    seed: int = 0,
    texts: Sequence[str] | None = None,
) -> Path:
    """Write a randomly initialised `architecture` model and its tokenizer to `directory`.

    The tokenizer is byte-level BPE trained on `texts` (default: a few clinical sentences);
    its vocabulary may come out smaller than `vocab_size` on little text, and the model's
    embedding matrix matches the tokenizer's real size. Same arguments, same weights.
    Returns `directory`, ready for `model.path`.
    """
    import torch
    from transformers import AutoModelForCausalLM

    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")
    directory = Path(directory)
    tokenizer = train_bpe_tokenizer(texts or SAMPLE_CLINICAL_TEXTS, vocab_size,
                                    model_max_length=context_length)
    config = architecture_config(
        architecture, vocab_size=len(tokenizer), hidden=hidden, layers=layers, heads=heads,
        context_length=context_length, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    # A private generator keeps the caller's global RNG state untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config)
    directory.mkdir(parents=True, exist_ok=True)
    with progress_bars_off():
        model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def tiny_model_config(model_dir: Path | str, **sections: dict):
    """A CPU/float32 `Config` that loads `model_dir` under the `clinical-demo` entry, LoRA r=4.

    `sections` are mappings merged over those defaults, e.g.
    `tiny_model_config(path, model_loading={"load_in_8bit": True}, training={"seed": 3})`.
    """

    data: dict[str, dict] = {
        "model": {"name": "clinical-demo", "path": str(model_dir), "device": "cpu", "dtype": "float32"},
        "model_loading": {"use_lora": True, "lora_r": 4, "lora_alpha": 8, "lora_dropout": 0.0},
    }
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    return config_from_mapping(data, source="tiny_model_config")
