"""Supervised fine-tuning (the first stage of RLHF) on prompt/answer pairs, answers only.

Each example becomes `format_prompt(prompt) + " " + answer + EOS`; the loss is taken on the
answer and EOS tokens only (prompt positions are labelled -100), as in InstructGPT's SFT
stage. The prompt format is the registry entry's, so PPO later samples from exactly the
distribution SFT shaped.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

IGNORE_INDEX = -100
"""Label of positions that do not count in the loss (torch cross_entropy's default ignore)."""


@dataclass(frozen=True)
class EncodedExample:
    input_ids: tuple[int, ...]
    """Prompt tokens, then answer tokens, then EOS."""
    prompt_length: int
    """How many leading tokens are prompt (excluded from the loss)."""


def encode_examples(tokenizer, format_prompt: Callable[[str], str], examples: Sequence,
                    context_length: int) -> list[EncodedExample]:
    """Tokenize `.prompt`/`.answer` pairs; answers are cut to fit `context_length` (EOS kept)."""
    encoded = []
    for example in examples:
        prompt_ids = tokenizer(format_prompt(example.prompt), add_special_tokens=False)["input_ids"]
        answer_ids = tokenizer(" " + example.answer.strip(), add_special_tokens=False)["input_ids"]
        room = context_length - len(prompt_ids) - 1
        if room < 1:
            continue  # a prompt longer than the context teaches nothing about answering
        ids = tuple(prompt_ids) + tuple(answer_ids[:room]) + (tokenizer.eos_token_id,)
        encoded.append(EncodedExample(ids, len(prompt_ids)))
    return encoded


def collate(batch: Sequence[EncodedExample], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-padded `input_ids`, `attention_mask` and answer-only `labels` for a batch."""
    width = max(len(example.input_ids) for example in batch)
    input_ids = torch.full((len(batch), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
    for row, example in enumerate(batch):
        length = len(example.input_ids)
        input_ids[row, :length] = torch.tensor(example.input_ids)
        attention_mask[row, :length] = 1
        labels[row, example.prompt_length:length] = input_ids[row, example.prompt_length:length]
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def answer_loss(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean next-token cross-entropy over answer tokens (labels != -100).

    The padding mask is not used: padding is on the right, so under causal attention no real
    token can see a pad, and pad positions carry no label. An all-ones mask lets sdpa take its
    causal fast path instead of materialising a [B, 1, T, T] mask.
    """
    logits = model(input_ids=batch["input_ids"], attention_mask=torch.ones_like(batch["input_ids"])).logits
    # Position t predicts token t+1.
    shifted_logits = logits[:, :-1].reshape(-1, logits.size(-1)).float()
    shifted_labels = batch["labels"][:, 1:].reshape(-1)
    return torch.nn.functional.cross_entropy(shifted_logits, shifted_labels, ignore_index=IGNORE_INDEX)


def length_bucketed_batches(lengths: Sequence[int], batch_size: int, generator: torch.Generator) -> list[list[int]]:
    """Shuffled batches of indices whose lengths are similar, so little compute goes to padding.

    Indices are shuffled, cut into pools of 32 batches, sorted by length within each pool and
    split into batches; the batch order is shuffled again (the usual "bucket by length" trick,
    random enough across epochs, deterministic for a seeded generator).
    """
    order = torch.randperm(len(lengths), generator=generator).tolist()
    pool_size = batch_size * 32
    batches = []
    for start in range(0, len(order), pool_size):
        pool = sorted(order[start:start + pool_size], key=lambda index: lengths[index])
        batches.extend(pool[i:i + batch_size] for i in range(0, len(pool), batch_size))
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def learning_rate_factor(step: int, total_steps: int, warmup_steps: int) -> float:
    """Linear warm-up, then cosine decay to 10% of the peak (a floor keeps late steps useful)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


@dataclass
class SFTResult:
    steps: int
    """Optimizer steps taken."""
    total_steps: int
    """Steps the configured epochs would take."""
    final_loss: float
    """Mean answer loss over the last 10% of steps (a single batch is noisy)."""
    seconds: float
    stopped_early: bool
    """The time budget ran out before the configured epochs."""


def train_sft(model, examples: Sequence[EncodedExample], *, pad_token_id: int, epochs: int, batch_size: int,
              learning_rate: float, seed: int, deadline: float,
              progress: Callable[[int, int, float], None] | None = None) -> SFTResult:
    """AdamW on the answer loss, batches shuffled by a generator seeded with `seed`.

    Stops (and reports `stopped_early`) once `time.monotonic()` passes `deadline`.
    """
    steps_per_epoch = math.ceil(len(examples) / batch_size)
    total_steps = steps_per_epoch * epochs
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, betas=(0.9, 0.95), weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: learning_rate_factor(s, total_steps, max(1, total_steps // 20)))
    generator = torch.Generator().manual_seed(seed)
    started, step, recent = time.monotonic(), 0, []
    model.train()
    lengths = [len(example.input_ids) for example in examples]
    for _ in range(epochs):
        for indices in length_bucketed_batches(lengths, batch_size, generator):
            if time.monotonic() > deadline:
                return SFTResult(step, total_steps, _mean(recent), time.monotonic() - started, True)
            loss = answer_loss(model, collate([examples[i] for i in indices], pad_token_id))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            step += 1
            recent = (recent + [loss.item()])[-max(1, total_steps // 10):]
            if progress is not None:
                progress(step, total_steps, loss.item())
    model.eval()
    return SFTResult(step, total_steps, _mean(recent), time.monotonic() - started, False)


@torch.no_grad()
def evaluate_answer_loss(model, examples: Sequence[EncodedExample], *, pad_token_id: int,
                         batch_size: int = 64) -> float:
    """Token-weighted mean answer loss over `examples` (e.g. the held-out split)."""
    model.eval()
    total_loss, total_tokens = 0.0, 0
    for start in range(0, len(examples), batch_size):
        batch = collate(examples[start:start + batch_size], pad_token_id)
        tokens = int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
        total_loss += answer_loss(model, batch).item() * tokens
        total_tokens += tokens
    return total_loss / max(1, total_tokens)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")
