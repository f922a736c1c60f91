"""Byte-level BPE tokenizers trained locally with the `tokenizers` library.

Used by the demo model builder and by the tiny test models: neither may download a
tokenizer, and byte-level BPE (GPT-2's scheme) can encode any text without an unknown token.
"""

from __future__ import annotations

from collections.abc import Iterable

END_OF_TEXT = "<|endoftext|>"
"""Serves as BOS and EOS, as in GPT-2."""

PAD = "<pad>"
"""A distinct pad token, so that padding is never confused with a real end of answer."""


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int, *, model_max_length: int = 1024):
    """Train a byte-level BPE tokenizer on `texts`; return a transformers fast tokenizer.

    The result has `eos_token == bos_token == "<|endoftext|>"`, `pad_token == "<pad>"` and
    `padding_side == "left"` (generation pads on the left so every prompt ends at the same
    position). Training is deterministic for a given text sequence.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[END_OF_TEXT, PAD],
        # Seeding the 256 byte symbols guarantees every input is encodable.
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=END_OF_TEXT,
        eos_token=END_OF_TEXT,
        pad_token=PAD,
        model_max_length=model_max_length,
        padding_side="left",  # a constructor argument, so save_pretrained records it
    )
    return tokenizer
