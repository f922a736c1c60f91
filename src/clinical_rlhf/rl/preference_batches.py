"""Preference pairs as token batches, and the answer log-probs DPO needs from them.

Layout, the rollout's (`rl/rollout.py`): the prompt in the model's template, tokenised as a
rollout's prompt is (the tokenizer's own BOS included), left-padded; then the answer, right-padded,
ending in EOS. Logits at column `P - 1 + t` predict answer token `t`, positions come from the
attention mask, so an answer's log-probs here are those PPO would compute had the policy sampled
it. Only answer tokens (and their EOS) count: prompt and padding are masked.

A batch of `n` pairs holds `2n` rows, the chosen answers first, then the rejected ones, so one
forward pass scores both sides (TRL's "concatenated forward").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from clinical_rlhf.conversation import render_question
from clinical_rlhf.rl.losses import answer_logprobs, logprobs_of_tokens


def conversation_text(prompt: str, messages: Sequence[dict]) -> str:
    """The user text put in the prompt template: earlier turns as "User: ... / Assistant: ...",
    system messages first, `prompt` last. The server renders a chat request exactly so
    (`serve/backends/local.py: render_chat`, checked equal in tests/rl/test_dpo_batches.py), so
    the policy is trained on the format it is later asked in."""
    return render_question(prompt, messages)


@dataclass(frozen=True)
class EncodedPair:
    """One preference pair as token ids."""

    prompt_ids: tuple[int, ...]
    chosen_ids: tuple[int, ...]
    """The preferred answer's tokens, ending in EOS unless the pair was cut to `max_length`."""
    rejected_ids: tuple[int, ...]
    truncated: bool
    """The prompt or the answers were cut to fit `max_length`."""


def _answer_ids(tokenizer, prompt_text: str, answer: str) -> list[int]:
    """The answer's tokens as they follow the prompt: encoded together with it, then split at the
    prompt's end, so a tokenizer that merges or re-spaces across the boundary (SentencePiece's
    leading "▁") gives the ids generation would produce. Falls back to encoding the answer alone
    when the joint encoding does not start with the prompt's tokens."""
    separator = "" if prompt_text[-1:].isspace() else " "
    prompt_only = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    joint = tokenizer(prompt_text + separator + answer.strip(), add_special_tokens=False)["input_ids"]
    if joint[:len(prompt_only)] == prompt_only and len(joint) > len(prompt_only):
        return list(joint[len(prompt_only):])
    return list(tokenizer(separator + answer.strip(), add_special_tokens=False)["input_ids"])


def encode_pair(tokenizer, format_prompt, prompt_text: str, chosen: str, rejected: str,
                max_length: int) -> EncodedPair:
    """Template and tokenise one pair; cut it to `max_length` tokens when longer.

    A pair too long keeps the end of its prompt (where the answer starts; at most `max_length // 2`
    tokens of it when the answers need the room), and both answers are cut to what is left.
    """
    formatted = format_prompt(prompt_text)
    prompt_ids = list(tokenizer(formatted)["input_ids"])
    eos = tokenizer.eos_token_id
    chosen_ids = _answer_ids(tokenizer, formatted, chosen) + [eos]
    rejected_ids = _answer_ids(tokenizer, formatted, rejected) + [eos]
    longest = max(len(chosen_ids), len(rejected_ids))
    if len(prompt_ids) + longest <= max_length:
        return EncodedPair(tuple(prompt_ids), tuple(chosen_ids), tuple(rejected_ids), False)
    keep = min(len(prompt_ids), max(max_length - longest, max_length // 2))
    prompt_ids = prompt_ids[len(prompt_ids) - keep:]
    room = max_length - len(prompt_ids)
    return EncodedPair(tuple(prompt_ids), tuple(chosen_ids[:room]), tuple(rejected_ids[:room]), True)


def encode_records(bundle, records: Sequence, max_length: int) -> list[EncodedPair]:
    """`PreferenceRecord`s with a winner -> `EncodedPair`s in the bundle's prompt template."""
    return [encode_pair(bundle.tokenizer, bundle.format_prompt, conversation_text(r.prompt, r.messages),
                        r.chosen, r.rejected, max_length) for r in records]


@dataclass
class PairBatch:
    """`2n` rows (chosen answers, then rejected ones) in the rollout layout."""

    input_ids: Tensor
    """`[2n, P + A]`: left-padded prompt, then right-padded answer."""
    attention_mask: Tensor
    answer_ids: Tensor
    """`[2n, A]`."""
    answer_mask: Tensor
    """`[2n, A]`, 1.0 on answer tokens (EOS included), 0.0 on padding."""

    @property
    def prompt_width(self) -> int:
        return self.input_ids.shape[1] - self.answer_ids.shape[1]

    def __len__(self) -> int:
        """Pairs in the batch."""
        return self.input_ids.shape[0] // 2


def collate_pairs(pairs: Sequence[EncodedPair], pad_token_id: int, device: torch.device | str = "cpu") -> PairBatch:
    """Stack `pairs` into one `PairBatch` on `device`."""
    rows = [(pair.prompt_ids, pair.chosen_ids) for pair in pairs] + [(pair.prompt_ids, pair.rejected_ids)
                                                                      for pair in pairs]
    width_p = max(len(prompt) for prompt, _ in rows)
    width_a = max(len(answer) for _, answer in rows)
    prompt_ids = torch.full((len(rows), width_p), pad_token_id, dtype=torch.long)
    prompt_mask = torch.zeros((len(rows), width_p), dtype=torch.long)
    answer_ids = torch.full((len(rows), width_a), pad_token_id, dtype=torch.long)
    answer_mask = torch.zeros((len(rows), width_a), dtype=torch.long)
    for row, (prompt, answer) in enumerate(rows):
        prompt_ids[row, width_p - len(prompt):] = torch.tensor(prompt, dtype=torch.long)
        prompt_mask[row, width_p - len(prompt):] = 1
        answer_ids[row, :len(answer)] = torch.tensor(answer, dtype=torch.long)
        answer_mask[row, :len(answer)] = 1
    return PairBatch(torch.cat([prompt_ids, answer_ids], 1).to(device), torch.cat([prompt_mask, answer_mask], 1).to(device),
                     answer_ids.to(device), answer_mask.float().to(device))


def pair_logprobs(bundle, batch: PairBatch, reduction: str = "sum") -> tuple[Tensor, Tensor]:
    """(chosen, rejected) answer log-probs `[n]` each, of `bundle.logits` (the policy, with grad;
    the reference inside `bundle.reference()`).

    Naive equivalent it must match, pair by pair without padding:
        ids = prompt + answer; logp = log_softmax(model(ids).logits[len(prompt) - 1:-1]).gather(answer)
        logp.sum()   (or .mean() for `reduction="mean"`)
    """
    width, steps = batch.prompt_width, batch.answer_ids.shape[1]
    logits = bundle.logits(batch.input_ids, batch.attention_mask)[:, width - 1: width - 1 + steps]
    token_logprobs = logprobs_of_tokens(logits.float(), batch.answer_ids)
    sequence = answer_logprobs(token_logprobs, batch.answer_mask, reduction)
    return sequence[:len(batch)], sequence[len(batch):]


@torch.no_grad()
def reference_logprobs(bundle, pairs: Sequence[EncodedPair], micro_batch_size: int,
                       reduction: str = "sum") -> Tensor:
    """`[N, 2]` (chosen, rejected) log-probs of every pair under the reference policy (adapter
    disabled), in micro-batches of `micro_batch_size` pairs."""
    parts = []
    for start in range(0, len(pairs), micro_batch_size):
        batch = collate_pairs(pairs[start:start + micro_batch_size], bundle.tokenizer.pad_token_id, bundle.device)
        with bundle.reference():
            chosen, rejected = pair_logprobs(bundle, batch, reduction)
        parts.append(torch.stack([chosen, rejected], dim=1).cpu())
    return torch.cat(parts) if parts else torch.zeros((0, 2))
