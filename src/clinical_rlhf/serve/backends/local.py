"""The factory's model (plus a trained adapter) generating in this process, one batch at a time.

Chat conversations are put into the registry entry's prompt template, the format the policy was
fine-tuned and trained on. That template has one user turn, so a system message and earlier
turns are written into it as text ("User: ... / Assistant: ..."), the last user message last.
`/v1/completions` continues the raw prompt, untemplated, as OpenAI and vLLM do.

A batch holds requests with different limits: it is generated to the longest `max_tokens` and
each answer is cut to its own limit. Requests with different sampling settings are generated in
separate `generate` calls (one per temperature/top-p pair). Sampling is pure temperature/top-p
(top-k off), the distribution PPO trained; temperature 0 is greedy.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import defaultdict
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import torch

from clinical_rlhf.conversation import render_conversation
from clinical_rlhf.models import build_policy
from clinical_rlhf.serve.backends.base import GenerationRequest, GenerationResult, Message, PromptTooLong

if TYPE_CHECKING:
    from clinical_rlhf.config import Config
    from clinical_rlhf.models.bundle import PolicyBundle


def render_chat(messages: tuple[Message, ...]) -> str:
    """The conversation as the text of one user turn (see the module docstring)."""
    return render_conversation(messages)


class _PastDeadline:
    """Stopping criterion: stop the whole batch once nobody waits for any of its answers."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline

    def __call__(self, input_ids, scores, **_: object):
        return torch.full((input_ids.shape[0],), time.monotonic() > self.deadline, dtype=torch.bool,
                          device=input_ids.device)


class LocalBackend:
    batches_requests = True

    def __init__(self, bundle: PolicyBundle, name: str) -> None:
        self.bundle = bundle
        self.name = name
        self.tokenizer = bundle.tokenizer
        config = bundle.model.config
        self.context_length = int(getattr(config, "max_position_embeddings", None)
                                  or getattr(config, "n_positions", None) or bundle.entry.context_length)
        ids = {self.tokenizer.eos_token_id}
        configured = getattr(getattr(bundle.model, "generation_config", None), "eos_token_id", None)
        ids.update(configured if isinstance(configured, (list, tuple)) else [configured])
        self.eos_ids = sorted(i for i in ids if i is not None)
        # One thread: a model generates one batch at a time; the event loop stays free meanwhile.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="generate")
        # A fast tokenizer used from two threads at once can fail ("Already borrowed"): `prepare`
        # runs on the event loop while the worker encodes or decodes a batch.
        self._tokenizer_lock = threading.Lock()

    @classmethod
    def from_config(cls, cfg: Config, trainable_state: Mapping | None = None) -> LocalBackend:
        """Build the policy as training does; load the checkpoint's adapter (strict) when given."""
        bundle = build_policy(cfg)
        if trainable_state is not None:
            bundle.load_trainable_state_dict(dict(trainable_state))
        bundle.eval()
        return cls(bundle, f"local:{cfg.model.name}")

    # -- requests

    def model_input(self, request: GenerationRequest) -> str:
        if request.kind == "chat":
            return self.bundle.format_prompt(render_chat(request.messages))
        return request.prompt

    def prepare(self, request: GenerationRequest) -> GenerationRequest:
        text = self.model_input(request)
        with self._tokenizer_lock:
            prompt_tokens = len(self.tokenizer(text)["input_ids"])
        room = self.context_length - prompt_tokens
        if room >= request.max_tokens:
            return request
        if room < 1 or request.max_tokens_explicit:
            raise PromptTooLong(prompt_tokens, request.max_tokens, self.context_length)
        return request.with_max_tokens(room)

    async def generate(self, batch: list[GenerationRequest]) -> list[GenerationResult]:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self.generate_now, batch)

    async def aclose(self) -> None:
        self._executor.shutdown(wait=True)

    # -- generation (in the worker thread)

    def _sampling(self, request: GenerationRequest) -> tuple[float, float]:
        temperature = self.bundle.temperature if request.temperature is None else request.temperature
        return float(temperature), float(1.0 if request.top_p is None else request.top_p)

    def generate_now(self, batch: list[GenerationRequest]) -> list[GenerationResult]:
        groups: dict[tuple[float, float], list[int]] = defaultdict(list)
        for index, request in enumerate(batch):
            groups[self._sampling(request)].append(index)
        results: list[GenerationResult | None] = [None] * len(batch)
        for (temperature, top_p), indices in groups.items():
            for index, result in zip(indices, self._generate_group([batch[i] for i in indices], temperature, top_p)):
                results[index] = result
        return results  # type: ignore[return-value]

    def _generate_group(self, group: list[GenerationRequest], temperature: float,
                        top_p: float) -> list[GenerationResult]:
        from transformers import StoppingCriteriaList

        tokenizer = self.tokenizer
        texts = [self.model_input(r) for r in group]
        with self._tokenizer_lock:
            encoded = tokenizer(texts, return_tensors="pt", padding=True)
        input_ids = encoded["input_ids"].to(self.bundle.device)
        attention_mask = encoded["attention_mask"].to(self.bundle.device)
        sampling = ({"do_sample": True, "temperature": temperature, "top_p": top_p, "top_k": 0}
                    if temperature > 0 else {"do_sample": False})
        stopping = StoppingCriteriaList([_PastDeadline(max(r.deadline for r in group))])
        with torch.inference_mode():
            sequences = self.bundle.model.generate(
                input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=max(r.max_tokens for r in group),
                pad_token_id=tokenizer.pad_token_id, eos_token_id=self.eos_ids, stopping_criteria=stopping,
                **sampling)
        answers = sequences[:, input_ids.shape[1]:].tolist()
        prompt_lengths = attention_mask.sum(dim=1).tolist()
        with self._tokenizer_lock:
            return [self._result(request, ids, int(length))
                    for request, ids, length in zip(group, answers, prompt_lengths)]

    def _result(self, request: GenerationRequest, ids: list[int], prompt_tokens: int) -> GenerationResult:
        eos = next((position for position, token in enumerate(ids) if token in self.eos_ids), None)
        ended = eos is not None and eos < request.max_tokens
        kept = ids[: eos if ended else request.max_tokens]
        text = self.tokenizer.decode(kept, skip_special_tokens=True)
        finish = "stop" if ended else "length"
        cut = min((text.find(s) for s in request.stop if s in text), default=-1)
        if cut >= 0:
            text, finish = text[:cut], "stop"
            kept = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if request.kind == "chat":
            text = text.strip()
        return GenerationResult(text, finish, prompt_tokens, len(kept))
