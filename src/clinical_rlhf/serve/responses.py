"""OpenAI-shaped response bodies and server-sent-event streams, built from a gated answer.

Streams are released only after the whole answer has passed the gate (see docs/serving.md):
the text is then sent in chunks of a few words, so clients render it progressively, and the
last chunk carries `finish_reason` and the `safety` object; `data: [DONE]` ends the stream.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from clinical_rlhf.serve.backends.base import GenerationResult
from clinical_rlhf.serve.gate import AnswerCheck

WORDS_PER_CHUNK = 4
_WORD = re.compile(r"\S+\s*|\s+")


@dataclass(frozen=True, slots=True)
class Answer:
    """Everything a response is built from."""

    request_id: str
    model: str
    kind: str
    result: GenerationResult
    gated: AnswerCheck
    safety: dict[str, Any]
    created: int

    @property
    def finish_reason(self) -> str:
        return "content_filter" if self.gated.fallback else self.result.finish_reason

    @property
    def usage(self) -> dict[str, int]:
        prompt, completion = self.result.prompt_tokens, self.result.completion_tokens
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def new_answer(request_id: str, model: str, kind: str, result: GenerationResult, gated: AnswerCheck,
               safety: dict[str, Any]) -> Answer:
    return Answer(request_id, model, kind, result, gated, safety, int(time.time()))


def completion_body(answer: Answer) -> dict[str, Any]:
    if answer.kind == "chat":
        choice = {"index": 0, "message": {"role": "assistant", "content": answer.gated.text},
                  "logprobs": None, "finish_reason": answer.finish_reason}
        obj = "chat.completion"
    else:
        choice = {"index": 0, "text": answer.gated.text, "logprobs": None, "finish_reason": answer.finish_reason}
        obj = "text_completion"
    return {"id": answer.request_id, "object": obj, "created": answer.created, "model": answer.model,
            "choices": [choice], "usage": answer.usage, "safety": answer.safety}


def chunks_of(text: str, words: int = WORDS_PER_CHUNK) -> list[str]:
    """`text` split into pieces of `words` words each (whitespace kept), which join back to `text`."""
    pieces = _WORD.findall(text)
    return ["".join(pieces[i:i + words]) for i in range(0, len(pieces), words)] or [""]


def _event(payload: dict[str, Any] | str) -> str:
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return f"data: {data}\n\n"


def stream_events(answer: Answer, include_usage: bool) -> Iterator[str]:
    chat = answer.kind == "chat"
    head = {"id": answer.request_id, "object": "chat.completion.chunk" if chat else "text_completion",
            "created": answer.created, "model": answer.model}

    def chunk(content: str | None, finish: str | None, role: bool = False, **extra: Any) -> dict[str, Any]:
        if chat:
            delta: dict[str, Any] = {"role": "assistant"} if role else {}
            if content is not None:
                delta["content"] = content
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        else:
            choice = {"index": 0, "text": content or "", "logprobs": None, "finish_reason": finish}
        return {**head, "choices": [choice], **extra}

    if chat:
        yield _event(chunk("", None, role=True))
    for piece in chunks_of(answer.gated.text):
        yield _event(chunk(piece, None))
    yield _event(chunk(None, answer.finish_reason, safety=answer.safety))
    if include_usage:
        yield _event({**head, "choices": [], "usage": answer.usage})
    yield _event("[DONE]")
