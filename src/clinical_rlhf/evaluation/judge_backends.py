"""Where the `llm` judge's replies come from: the project's two generation backends.

    local              a transformers model in this process (`serve.backends.LocalBackend`, built
                       by the models factory from a registry id or a checkpoint directory)
    openai_compatible  any OpenAI-compatible server (`serve.backends.RemoteBackend`: vLLM, TGI,
                       `clinical-rlhf serve`, a hosted API); the key comes from the environment

Each backend has an `identity` (what would change a judgement: model and weights, or endpoint
and model name) that keys the judgement cache, and `complete(prompts)` giving, per prompt, the
reply text or the error that prevented one. An error is never raised out of `complete`: the
judge counts it as an unparsable judgement.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from clinical_rlhf.config import LLMJudgeConfig, ServeConfig
from clinical_rlhf.errors import ClinicalRLHFError, ConfigError
from clinical_rlhf.models.fingerprint import base_model_fingerprint
from clinical_rlhf.serve.backends.base import GenerationRequest, Message
from clinical_rlhf.serve.backends.local import LocalBackend
from clinical_rlhf.serve.backends.remote import RemoteBackend
from clinical_rlhf.serve.errors import APIError


@dataclass(frozen=True, slots=True)
class Completion:
    text: str | None
    error: str = ""


def _request(prompt: str, judge: LLMJudgeConfig, deadline: float = float("inf")) -> GenerationRequest:
    if judge.prompt_mode == "raw":  # the rubric file holds the judge's whole prompt, template included
        return GenerationRequest(kind="completion", prompt=prompt, max_tokens=judge.max_new_tokens,
                                 temperature=judge.temperature, deadline=deadline)
    return GenerationRequest(kind="chat", messages=(Message("user", prompt),), max_tokens=judge.max_new_tokens,
                             temperature=judge.temperature, deadline=deadline)


def _mode(judge: LLMJudgeConfig) -> str:
    """Part of a backend's identity: a raw prompt is another question than the same text in a chat turn."""
    return ":raw" if judge.prompt_mode == "raw" else ""


class LocalJudgeBackend:
    """The judge model generating in this process, `batch_size` prompts at a time."""

    def __init__(self, backend, identity: str, judge: LLMJudgeConfig) -> None:
        self.backend = backend
        self.identity = identity
        self.judge = judge

    @classmethod
    def from_config(cls, cfg, judge: LLMJudgeConfig) -> LocalJudgeBackend:
        # The judge is a plain model: no value model; the LoRA adapter the factory attaches is
        # freshly initialised (zero update), so the judge generates with its own weights.
        model = cfg.model.model_copy(update={"name": judge.model, "path": judge.path})
        loading = cfg.model_loading.model_copy(update={"shared_value_base": True, "gradient_checkpointing": False})
        judge_cfg = cfg.model_copy(update={"model": model, "model_loading": loading})
        backend = LocalBackend.from_config(judge_cfg)
        identity = f"local:{judge.model}:{base_model_fingerprint(backend.bundle.model)[:16]}{_mode(judge)}"
        return cls(backend, identity, judge)

    def complete(self, prompts: Sequence[str]) -> list[Completion]:
        results: list[Completion | None] = [None] * len(prompts)
        # Batched by the token budget `prepare` left each prompt: a batch runs to its longest prompt
        # plus its largest budget, which fits the context only when every budget in it is equal.
        by_budget: dict[int, list[tuple[int, GenerationRequest]]] = defaultdict(list)
        for index, prompt in enumerate(prompts):
            try:
                request = self.backend.prepare(_request(prompt, self.judge))
                by_budget[request.max_tokens].append((index, request))
            except APIError as exc:  # too long for the judge's context
                results[index] = Completion(None, f"not judged: {exc.message}")
        for group in by_budget.values():
            for start in range(0, len(group), self.judge.batch_size):
                batch = group[start:start + self.judge.batch_size]
                for (index, _), result in zip(batch, self.backend.generate_now([r for _, r in batch])):
                    results[index] = Completion(result.text)
        return results  # type: ignore[return-value]

    def close(self) -> None:
        asyncio.run(self.backend.aclose())


class RemoteJudgeBackend:
    """An OpenAI-compatible endpoint, `batch_size` requests in flight, on one private event loop."""

    def __init__(self, backend, judge: LLMJudgeConfig) -> None:
        self.backend = backend
        self.judge = judge
        self.identity = f"remote:{backend.base_url}:{backend.model}{_mode(judge)}"
        self._loop = asyncio.new_event_loop()

    @classmethod
    def from_config(cls, judge: LLMJudgeConfig) -> RemoteJudgeBackend:
        url = judge.remote.base_url or ""
        if not url.startswith(("http://", "https://")):
            raise ConfigError("evaluation.llm_judge.backend openai_compatible needs evaluation.llm_judge.remote."
                              "base_url, an http(s) URL such as http://127.0.0.1:8001/v1")
        serve = ServeConfig(backend="openai_compatible", remote=judge.remote)
        try:
            return cls(RemoteBackend.connect(serve), judge)
        except ClinicalRLHFError as exc:
            raise ClinicalRLHFError(f"the llm judge's endpoint: {exc}") from None

    async def _one(self, prompt: str, slots: asyncio.Semaphore) -> Completion:
        async with slots:
            try:
                [result] = await self.backend.generate([_request(prompt, self.judge,
                                                                 time.monotonic() + self.judge.timeout_seconds)])
                return Completion(result.text)
            except APIError as exc:
                return Completion(None, f"not judged: {exc.message}")

    async def _all(self, prompts: Sequence[str]) -> list[Completion]:
        slots = asyncio.Semaphore(self.judge.batch_size)
        return list(await asyncio.gather(*(self._one(prompt, slots) for prompt in prompts)))

    def complete(self, prompts: Sequence[str]) -> list[Completion]:
        return self._loop.run_until_complete(self._all(prompts))

    def close(self) -> None:
        self._loop.run_until_complete(self.backend.aclose())
        self._loop.close()


def build_judge_backend(cfg, judge: LLMJudgeConfig):
    if judge.backend == "openai_compatible":
        return RemoteJudgeBackend.from_config(judge)
    return LocalJudgeBackend.from_config(cfg, judge)
