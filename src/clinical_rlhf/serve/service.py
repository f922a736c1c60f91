"""One request, end to end: check the question, generate (batched), check the answer, audit both.

Each request leaves two audit records, written before the response is sent: the question's
check (`stage: prompt`) and the outcome (`stage: answer`: the checked text's hashes, the verdict,
what was returned and why), or a `generation_failed` record when no answer came. The actor is
the API key's id. An audit record that cannot be written stops the answer (503): nothing leaves
this server unaudited.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

from clinical_rlhf.config import ServeConfig
from clinical_rlhf.serve.audit import AuditWriter
from clinical_rlhf.serve.auth import ApiKey
from clinical_rlhf.serve.backends.base import Backend, GenerationRequest, GenerationResult, Message
from clinical_rlhf.serve.batching import DynamicBatcher
from clinical_rlhf.serve.errors import INVALID, APIError, log_failure
from clinical_rlhf.serve.gate import SafetyGate, safety_summary
from clinical_rlhf.serve.metrics import ServeMetrics
from clinical_rlhf.serve.responses import Answer, new_answer
from clinical_rlhf.serve.schemas import ChatCompletionRequest, CompletionRequest

logger = logging.getLogger("clinical_rlhf.serve")


def guard_prompt(body: ChatCompletionRequest | CompletionRequest) -> str:
    """What the guard reads as the question: every user turn of a conversation (an emergency
    told two turns ago still counts), or the completion prompt."""
    if isinstance(body, CompletionRequest):
        return body.prompt
    return "\n".join(message.text for message in body.messages if message.role == "user")


class ServingCore:
    def __init__(self, serve: ServeConfig, served_model: str, gate: SafetyGate, backend: Backend,
                 audit: AuditWriter, metrics: ServeMetrics) -> None:
        self.serve = serve
        self.served_model = served_model
        self.gate = gate
        self.backend = backend
        self.audit = audit
        self.metrics = metrics
        self.batcher: DynamicBatcher | None = None
        if backend.batches_requests:
            batching = serve.batching
            self.batcher = DynamicBatcher(backend.generate, batching.max_batch_size if batching.enabled else 1,
                                          batching.max_wait_ms if batching.enabled else 0.0, metrics)

    def start(self) -> None:
        if self.batcher is not None:
            self.batcher.start()

    async def close(self) -> None:
        if self.batcher is not None:
            await self.batcher.close()
        await self.backend.aclose()

    # -- the request

    def generation_request(self, body: ChatCompletionRequest | CompletionRequest) -> GenerationRequest:
        if body.model != self.served_model:
            raise APIError(404, f"model `{body.model[:100]}` is not served here; use `{self.served_model}` "
                                f"(GET /v1/models)", "model_not_found", param="model")
        asked = body.requested_tokens
        if asked is not None and asked > self.serve.max_tokens_limit:
            raise APIError(INVALID, f"max_tokens {asked} is more than this server allows ({self.serve.max_tokens_limit}, "
                                f"serve.max_tokens_limit)", "invalid_request", param="max_tokens")
        common: dict[str, Any] = dict(
            max_tokens=asked or self.serve.default_max_tokens, max_tokens_explicit=asked is not None,
            temperature=body.temperature, top_p=body.top_p, stop=body.stop_sequences,
            deadline=time.monotonic() + self.serve.generation_timeout_seconds)
        if isinstance(body, ChatCompletionRequest):
            messages = tuple(Message(m.role, m.text) for m in body.messages)
            return GenerationRequest("chat", messages=messages, **common)
        return GenerationRequest("completion", prompt=body.prompt, **common)

    async def answer(self, body: ChatCompletionRequest | CompletionRequest, key: ApiKey) -> Answer:
        kind = "chat" if isinstance(body, ChatCompletionRequest) else "completion"
        # Tokenising a long prompt (under the backend's tokenizer lock) is blocking work: a thread.
        request = await asyncio.to_thread(self.backend.prepare, self.generation_request(body))
        request_id = f"{'chatcmpl' if kind == 'chat' else 'cmpl'}-{uuid.uuid4().hex}"
        prompt = guard_prompt(body)
        context = {"endpoint": kind, "request_id": request_id}

        prompt_check = await self.gate.prompt(prompt)
        self.metrics.observe_guard("prompt", prompt_check.verdict.action, prompt_check.seconds)
        await self._record("guard_check", key, prompt=prompt, verdict=prompt_check.verdict,
                           details={**context, "stage": "prompt"})
        if prompt_check.guard_failed:
            result = GenerationResult("", "stop", 0, 0)
            gated = self.gate.refuse_unchecked_prompt(prompt_check)
        else:
            result = await self._generate(request, key, prompt, context)
            gated = await self.gate.answer(prompt, prompt_check, result.text)
            self.metrics.observe_guard("answer", gated.verdict.action, gated.seconds)
        returned = "fallback" if gated.fallback else ("answer_with_notice" if gated.verdict.action == "escalate"
                                                      else "answer")
        if gated.fallback:
            self.metrics.count_fallback(gated.reason_code or "unsafe_answer")
        await self._record("guard_check", key, prompt=prompt, response=gated.checked_text, verdict=gated.verdict,
                           details={**context, "stage": "answer", "returned": returned,
                                    "reason_code": gated.reason_code, "finish_reason": result.finish_reason})
        return new_answer(request_id, self.served_model, kind, result, gated, safety_summary(prompt_check, gated))

    async def _generate(self, request: GenerationRequest, key: ApiKey, prompt: str,
                        context: dict[str, Any]) -> GenerationResult:
        timeout = self.serve.generation_timeout_seconds
        try:
            if self.batcher is not None:
                return await asyncio.wait_for(self.batcher.submit(request), timeout)
            start = time.monotonic()
            [result] = await asyncio.wait_for(self.backend.generate([request]), timeout)
            self.metrics.generation_latency.observe(time.monotonic() - start)
            return result
        except asyncio.TimeoutError:
            error = APIError(504, f"no answer within {timeout:g} s (serve.generation_timeout_seconds): the server "
                                  f"is busy or the answer is long; retry, or ask for fewer max_tokens",
                             "generation_timeout")
        except APIError as exc:
            error = exc
        except Exception as exc:  # noqa: BLE001 - logged without its message, answered as 500
            log_failure("generation failed", exc)
            error = APIError(500, "generation failed on the server; the failure is logged, please retry",
                             "generation_failed")
        await self._record("generation_failed", key, prompt=prompt,
                           details={**context, "status": error.status, "code": error.code})
        raise error

    async def _record(self, event: str, key: ApiKey, **fields: Any) -> None:
        try:
            await self.audit.record(event, key.id, **fields)
        except Exception as exc:  # noqa: BLE001
            log_failure("audit write failed", exc)
            raise APIError(503, "the audit log cannot be written, so no answer is given; the operator must "
                                "check serve.audit_file and its disk", "audit_unavailable") from None
        self.metrics.audit_records.inc()
