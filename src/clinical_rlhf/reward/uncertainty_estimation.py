"""Model-based uncertainty of an answer (torch; imported lazily by `clinical_rlhf.reward`).

Two estimators, chosen by `reward.uncertainty_estimation.method`:

- mc_dropout (Gal & Ghahramani 2016, "Dropout as a Bayesian approximation"): K forward passes of
  (prompt + answer) with the dropout layers active; per answer token, the standard deviation of
  its log-probability across the passes; the answer's dispersion is the mean over its tokens,
  mapped to [0, 1] by tanh. Only `nn.Dropout` modules are switched to training mode, so nothing
  else (batch norm, gradient checkpointing) changes; passes are batched, K x answers sequences in
  chunks of `micro_batch_size`, so cost is K forward passes of the batch and memory is bounded.
- sampling (for models without dropout, such as the Llama family; Manakul et al. 2023): K answers
  sampled per prompt; uncertainty = 1 - mean pairwise agreement of {answer, samples}
  (`consistency.agreement`). The samples also feed the self-consistency hallucination check.

`auto` picks mc_dropout when the model has an active dropout layer, else sampling.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch

from clinical_rlhf.reward.consistency import agreement

Method = Literal["auto", "mc_dropout", "sampling"]


def has_dropout(model: torch.nn.Module) -> bool:
    """True when some `nn.Dropout` layer has p > 0 (GPT-2, BioGPT: yes; Llama, Mistral: no)."""
    return any(isinstance(m, torch.nn.Dropout) and m.p > 0 for m in model.modules())


def resolve_method(model: torch.nn.Module, method: str) -> str:
    if method == "auto":
        return "mc_dropout" if has_dropout(model) else "sampling"
    if method == "mc_dropout" and not has_dropout(model):
        raise ValueError("method='mc_dropout' needs a model with dropout layers (p > 0); this one has "
                         "none (Llama-family models), use method='sampling' or 'auto'")
    if method not in ("mc_dropout", "sampling"):
        raise ValueError(f"method must be auto, mc_dropout or sampling (got {method!r})")
    return method


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def _pad_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def _encode_pairs(tokenizer, prompts: Sequence[str], responses: Sequence[str], max_length: int):
    """Token ids of prompt + answer, and the index where the answer starts (prompt cut from the left)."""
    encoded = []
    for prompt, response in zip(prompts, responses):
        p_ids = tokenizer(prompt, add_special_tokens=True)["input_ids"]
        r_ids = tokenizer(response, add_special_tokens=False)["input_ids"][: max_length - 1]
        p_ids = p_ids[-(max_length - len(r_ids)):] if len(p_ids) + len(r_ids) > max_length else p_ids
        encoded.append((p_ids + r_ids, len(p_ids)))
    return encoded


class _DropoutActive:
    """Context manager: dropout layers in training mode, everything else as it was."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.layers = [m for m in model.modules() if isinstance(m, torch.nn.Dropout)]

    def __enter__(self) -> None:
        self.modes = [m.training for m in self.layers]
        for layer in self.layers:
            layer.train()

    def __exit__(self, *exc) -> None:
        for layer, mode in zip(self.layers, self.modes):
            layer.train(mode)


@torch.no_grad()
def _token_logprobs(model, rows: list[list[int]], pad_id: int, device) -> torch.Tensor:
    """Log-prob of each next token, [len(rows), max_len - 1], 0 where padded."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long, device=device)
    mask = torch.zeros_like(ids)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, device=device)
        mask[i, : len(row)] = 1
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
    picked = torch.gather(logits, 2, ids[:, 1:, None]).squeeze(-1) - torch.logsumexp(logits, dim=-1)
    return picked * mask[:, 1:]


def mc_dropout_dispersion(model, tokenizer, prompts: Sequence[str], responses: Sequence[str], *,
                          n_samples: int = 10, micro_batch_size: int = 16, max_length: int | None = None,
                          seed: int = 0) -> list[float]:
    """Mean over answer tokens of the std (across `n_samples` dropout passes) of the token log-prob."""
    if n_samples < 2:
        raise ValueError(f"n_samples must be at least 2 for a dispersion (got {n_samples})")
    device = _device(model)
    max_length = max_length or getattr(tokenizer, "model_max_length", 1024)
    max_length = min(max_length, getattr(model.config, "max_position_embeddings", None)
                     or getattr(model.config, "n_positions", None) or max_length)
    encoded = _encode_pairs(tokenizer, prompts, responses, max_length)
    rows = [ids for ids, _ in encoded for _ in range(n_samples)]
    chunks = []
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), _DropoutActive(model):
        torch.manual_seed(seed)
        for start in range(0, len(rows), micro_batch_size):
            part = _token_logprobs(model, rows[start:start + micro_batch_size], _pad_id(tokenizer), device)
            chunks.append(torch.nn.functional.pad(part, (0, max(len(r) for r in rows) - 1 - part.shape[1])))
    logps = torch.cat(chunks).view(len(encoded), n_samples, -1)
    result = []
    for i, (ids, answer_start) in enumerate(encoded):
        answer = logps[i, :, answer_start - 1: len(ids) - 1]
        result.append(float(answer.std(dim=0).mean()) if answer.shape[1] else 0.0)
    return result


@torch.no_grad()
def sample_answers(model, tokenizer, prompts: Sequence[str], *, n_samples: int = 10,
                   micro_batch_size: int = 16, max_new_tokens: int = 48, seed: int = 0,
                   temperature: float = 1.0) -> list[list[str]]:
    """`n_samples` sampled answers per prompt (left-padded batched generation)."""
    device = _device(model)
    rows = [p for p in prompts for _ in range(n_samples)]
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    texts: list[str] = []
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            for start in range(0, len(rows), micro_batch_size):
                batch = tokenizer(rows[start:start + micro_batch_size], return_tensors="pt", padding=True).to(device)
                out = model.generate(**batch, do_sample=True, temperature=temperature, top_p=1.0,
                                     max_new_tokens=max_new_tokens, pad_token_id=_pad_id(tokenizer))
                texts += tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
    finally:
        tokenizer.padding_side = side
    return [texts[i * n_samples:(i + 1) * n_samples] for i in range(len(prompts))]


def estimate_uncertainty_with_samples(model, tokenizer, prompts: Sequence[str], responses: Sequence[str],
                                      n_samples: int = 10, method: Method = "auto", *,
                                      micro_batch_size: int = 16, max_new_tokens: int = 48,
                                      seed: int = 0) -> tuple[list[float], list[list[str]] | None]:
    """(uncertainty in [0, 1] per answer, the sampled answers when the sampling method ran)."""
    if len(prompts) != len(responses):
        raise ValueError(f"prompts ({len(prompts)}) and responses ({len(responses)}) differ in length")
    if resolve_method(model, method) == "mc_dropout":
        dispersion = mc_dropout_dispersion(model, tokenizer, prompts, responses, n_samples=n_samples,
                                           micro_batch_size=micro_batch_size, seed=seed)
        return [math.tanh(d) for d in dispersion], None
    samples = sample_answers(model, tokenizer, prompts, n_samples=n_samples, micro_batch_size=micro_batch_size,
                             max_new_tokens=max_new_tokens, seed=seed)
    return [1.0 - agreement([r, *s]) for r, s in zip(responses, samples)], samples


def estimate_uncertainty(model, tokenizer, prompts: Sequence[str], responses: Sequence[str],
                         n_samples: int = 10, method: Method = "auto", **options) -> list[float]:
    """Uncertainty in [0, 1] of each answer: tanh(MC-dropout dispersion) or sample disagreement."""
    return estimate_uncertainty_with_samples(model, tokenizer, prompts, responses, n_samples, method,
                                             **options)[0]
