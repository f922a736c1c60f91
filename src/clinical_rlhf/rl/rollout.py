"""Rollout: sample answers for a batch of prompts, keeping the policy's log-probs and the
critic's values that sampling computed, then score them with the reference policy.

Layout. Prompts are tokenised with left padding (every prompt ends at the same column, which
batched generation needs); answers are right-padded after their first EOS. Sampling already
ran the policy over every answer token: the raw logits that chose token `t` give its old
log-prob, and the hidden state the LM head read at that step gives its value through the value
head (`PolicyBundle.sample`), so no second policy pass runs. The reference pass runs on
`[prompt | answer]` with the attention mask of both, so logits at column `P - 1 + t` predict
answer token `t`; the update's passes (`policy_pass`) do the same with the adapter on.
Positions come from the attention mask (the bundle derives them exactly as `generate` does), so
those passes reproduce the sampling pass's log-probs up to float rounding (cached vs. full
attention: about 1e-6 in float32, tests/rl/test_rollout.py). Log-probs use `logits /
temperature`: the distribution the answer was sampled from.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

import torch
from torch import Tensor

from clinical_rlhf.rl.losses import logprobs_of_tokens


@dataclass
class Rollout:
    """One batch of sampled answers with everything the PPO update needs. Tensors are `[N, ...]`."""

    prompts: list[str]
    """The user prompts (not templated), one per answer."""
    responses: list[str]
    """Decoded answers, EOS and padding removed."""
    query_ids: Tensor
    query_mask: Tensor
    response_ids: Tensor
    response_mask: Tensor
    """1.0 on answer tokens up to and including the first EOS, 0.0 after."""
    ended_with_eos: Tensor
    """False for an answer cut off at `max_new_tokens` (it gets the missing-EOS penalty)."""
    logprobs: Tensor | None = None
    """log pi_old(a_t): the policy's log-probs (at the sampling temperature) while sampling."""
    ref_logprobs: Tensor | None = None
    """The reference policy's log-probs (`score`)."""
    values: Tensor | None = None
    """V_old(s_t): the critic's values of the states that chose each answer token."""

    def __len__(self) -> int:
        return self.response_ids.shape[0]

    @property
    def input_ids(self) -> Tensor:
        return torch.cat([self.query_ids, self.response_ids], dim=1)

    @property
    def attention_mask(self) -> Tensor:
        return torch.cat([self.query_mask, self.response_mask.to(self.query_mask.dtype)], dim=1)

    def select(self, index: Tensor | Sequence[int]) -> Rollout:
        """The sub-batch of rows `index` (a mini-batch or micro-batch)."""
        index = torch.as_tensor(index, dtype=torch.long)
        picked = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, Tensor):
                picked[item.name] = value[index]
            elif isinstance(value, list):
                picked[item.name] = [value[i] for i in index.tolist()]
            else:
                picked[item.name] = value
        return Rollout(**picked)

    def without_padding_columns(self) -> Rollout:
        """The same rows without the columns that are padding in every row: prompt columns left
        of the longest prompt, answer columns right of the longest answer. Positions come from
        the attention mask (all-padding columns add nothing to them) and attention is causal,
        so every real token's logits, log-probs and values are unchanged; a forward pass just
        runs on fewer columns."""
        first = int(self.query_mask.any(0).int().argmax())
        width = max(int(self.response_mask.sum(1).max()), 1)
        picked = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name.startswith("query_"):
                value = value[:, first:]
            elif isinstance(value, Tensor) and value.dim() == 2:  # the [N, T] answer-aligned tensors
                value = value[:, :width]
            picked[item.name] = value
        return Rollout(**picked)


def concat_rollouts(parts: Sequence[Rollout], pad_token_id: int) -> Rollout:
    """Stack sampled rollouts whose prompt and answer widths may differ (left-pad prompts,
    right-pad answers and their log-probs and values)."""
    width_q = max(part.query_ids.shape[1] for part in parts)
    width_r = max(part.response_ids.shape[1] for part in parts)

    def pad(tensor: Tensor, width: int, value: float, left: bool) -> Tensor:
        missing = width - tensor.shape[1]
        if missing == 0:
            return tensor
        filler = torch.full((tensor.shape[0], missing), value, dtype=tensor.dtype, device=tensor.device)
        return torch.cat([filler, tensor] if left else [tensor, filler], dim=1)

    return Rollout(
        prompts=[p for part in parts for p in part.prompts],
        responses=[r for part in parts for r in part.responses],
        query_ids=torch.cat([pad(p.query_ids, width_q, pad_token_id, True) for p in parts]),
        query_mask=torch.cat([pad(p.query_mask, width_q, 0, True) for p in parts]),
        response_ids=torch.cat([pad(p.response_ids, width_r, pad_token_id, False) for p in parts]),
        response_mask=torch.cat([pad(p.response_mask, width_r, 0, False) for p in parts]),
        ended_with_eos=torch.cat([p.ended_with_eos for p in parts]),
        logprobs=torch.cat([pad(p.logprobs, width_r, 0.0, False) for p in parts]),
        values=torch.cat([pad(p.values, width_r, 0.0, False) for p in parts]),
    )


def eos_token_ids(bundle) -> set[int]:
    """Every id that ends an answer: the tokenizer's EOS and the generation config's."""
    ids = {bundle.tokenizer.eos_token_id}
    configured = getattr(getattr(bundle.model, "generation_config", None), "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif configured:
        ids.update(configured)
    return {i for i in ids if i is not None}


def _is_any(ids: Tensor, values: set[int]) -> Tensor:
    hit = torch.zeros_like(ids, dtype=torch.bool)
    for value in values:
        hit |= ids == value
    return hit


def response_mask_after_eos(response_ids: Tensor, eos_ids: set[int]) -> tuple[Tensor, Tensor]:
    """(mask, ended): mask is 1.0 up to and including the first EOS of each row, 0.0 after;
    `ended` says whether the row has an EOS at all (rows without one are fully unmasked)."""
    is_eos = _is_any(response_ids, eos_ids)
    ended = is_eos.any(dim=1)
    steps = torch.arange(response_ids.shape[1], device=response_ids.device)
    first_eos = torch.where(ended, is_eos.int().argmax(dim=1), response_ids.shape[1])
    return (steps.unsqueeze(0) <= first_eos.unsqueeze(1)).float(), ended


class _StopWhen:
    """A `generate` stopping criterion that ends generation when `should_stop()` turns true
    (SIGTERM/SIGINT during a rollout: the rollout is abandoned, not finished)."""

    def __init__(self, should_stop: Callable[[], bool]) -> None:
        self.should_stop = should_stop

    def __call__(self, input_ids: Tensor, scores: Tensor, **_: object) -> Tensor:
        return torch.full((input_ids.shape[0],), self.should_stop(), dtype=torch.bool, device=input_ids.device)


def encode_prompts(bundle, prompts: Sequence[str], max_prompt_tokens: int) -> tuple[Tensor, Tensor]:
    """Template and tokenise with left padding; keep the last `max_prompt_tokens` tokens (the
    end of the template, where the answer starts, must survive truncation)."""
    texts = [bundle.format_prompt(prompt) for prompt in prompts]
    encoded = bundle.tokenizer(texts, return_tensors="pt", padding=True)
    ids, mask = encoded["input_ids"][:, -max_prompt_tokens:], encoded["attention_mask"][:, -max_prompt_tokens:]
    return ids.to(bundle.device), mask.to(bundle.device)


@torch.no_grad()
def generate(bundle, prompts: Sequence[str], *, max_new_tokens: int, temperature: float, top_p: float,
             max_prompt_tokens: int, should_stop: Callable[[], bool] | None = None) -> Rollout:
    """Sample one answer per prompt with the adapter on, with its log-probs and values (pure
    temperature/top-p sampling: no top-k and no repetition penalty, so the log-probs at the
    temperature are those of the distribution the update's passes compute)."""
    from transformers import StoppingCriteriaList

    tokenizer = bundle.tokenizer
    query_ids, query_mask = encode_prompts(bundle, prompts, max_prompt_tokens)
    stopping = StoppingCriteriaList([_StopWhen(should_stop)]) if should_stop else None
    eos_ids = eos_token_ids(bundle)
    sequences, logits, values = bundle.sample(
        query_ids, query_mask, do_sample=True, temperature=temperature,
        top_p=top_p, top_k=0, repetition_penalty=1.0, max_new_tokens=max_new_tokens,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=sorted(eos_ids), stopping_criteria=stopping,
    )
    response_ids = sequences[:, query_ids.shape[1]:]
    response_mask, ended = response_mask_after_eos(response_ids, eos_ids)
    logprobs = logprobs_of_tokens(logits, response_ids, temperature).float() * response_mask
    response_ids = response_ids.masked_fill(response_mask == 0, tokenizer.pad_token_id)
    text_ids = response_ids.masked_fill(_is_any(response_ids, eos_ids), tokenizer.pad_token_id)
    responses = [text.strip() for text in tokenizer.batch_decode(text_ids, skip_special_tokens=True)]
    return Rollout(list(prompts), responses, query_ids, query_mask, response_ids, response_mask, ended,
                   logprobs=logprobs, values=values * response_mask)


def policy_pass(bundle, rollout: Rollout, temperature: float) -> tuple[Tensor, Tensor, Tensor]:
    """(logprobs, values, logits) of the answer tokens under the trainable policy, with grad.

    The one forward pass per micro-batch of the update (the rollout's old log-probs and values
    are those of sampling, `generate`). Logits at column `P - 1 + t` predict answer token `t`,
    so only the last `T + 1` columns are computed (`bundle.forward(last=...)`) and the final
    one, which predicts past the answer, is dropped.
    """
    steps = rollout.response_ids.shape[1]
    logits, values = bundle.forward(rollout.input_ids, rollout.attention_mask, last=steps + 1)
    logits = logits[:, :steps]
    logprobs = logprobs_of_tokens(logits, rollout.response_ids, temperature)
    return logprobs, values[:, :steps].float(), logits


@torch.no_grad()
def score(bundle, rollout: Rollout, temperature: float, micro_batch_size: int) -> Rollout:
    """Fill `ref_logprobs`: the reference policy's (adapter disabled) log-probs of the answer
    tokens, in micro-batches. The policy's log-probs and the values came with the sampling."""
    steps = rollout.response_ids.shape[1]
    ref_logprobs = []
    for start in range(0, len(rollout), micro_batch_size):
        part = rollout.select(range(start, min(start + micro_batch_size, len(rollout))))
        with bundle.reference():
            ref_logits = bundle.logits(part.input_ids, part.attention_mask, last=steps + 1)[:, :steps]
        ref_logprobs.append(logprobs_of_tokens(ref_logits, part.response_ids, temperature).float())
    rollout.ref_logprobs = torch.cat(ref_logprobs) * rollout.response_mask
    return rollout
