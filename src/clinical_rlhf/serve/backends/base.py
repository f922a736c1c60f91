"""What every generation backend takes and returns.

A backend only generates: the safety gate, the audit log and the HTTP layer are the server's,
so a remote vLLM answer is gated exactly like a local one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal, Protocol

from clinical_rlhf.serve.errors import APIError

Kind = Literal["chat", "completion"]


@dataclass(frozen=True, slots=True)
class Message:
    role: str
    content: str


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    kind: Kind
    messages: tuple[Message, ...] = ()
    """The conversation (chat); the backend renders it in its model's format."""
    prompt: str = ""
    """The raw text to continue (completion)."""
    max_tokens: int = 256
    max_tokens_explicit: bool = False
    """The client set `max_tokens` (too long a prompt is then an error, not a shorter answer)."""
    temperature: float | None = None
    """`None`: the model's default; 0: greedy."""
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    deadline: float = float("inf")
    """`time.monotonic()` after which nobody waits for the answer; generation may stop early."""

    def with_max_tokens(self, max_tokens: int) -> GenerationRequest:
        return replace(self, max_tokens=max_tokens)


@dataclass(frozen=True, slots=True)
class GenerationResult:
    text: str
    finish_reason: Literal["stop", "length"]
    prompt_tokens: int
    completion_tokens: int


class PromptTooLong(APIError):
    def __init__(self, prompt_tokens: int, max_tokens: int, context: int) -> None:
        super().__init__(400, f"the prompt is {prompt_tokens} tokens and {max_tokens} more were asked for, "
                              f"but the model's context holds {context}; shorten the conversation or lower "
                              f"max_tokens", "context_length_exceeded", param="messages")


class UpstreamError(APIError):
    """The remote generation server failed or refused (502, or its own 4xx status)."""


class Backend(Protocol):
    name: str
    """What generates, for logs and `/ready` (`local:<model>` or `remote:<url>`)."""
    batches_requests: bool
    """True when the server's dynamic batcher should group requests for it (local model);
    False when the backend batches on its own (vLLM and TGI do continuous batching)."""

    def prepare(self, request: GenerationRequest) -> GenerationRequest:
        """Check a request before it is queued; may shorten a default `max_tokens` to fit the
        context, raises `PromptTooLong` when the prompt cannot fit."""
        ...

    async def generate(self, batch: list[GenerationRequest]) -> list[GenerationResult]:
        """One result per request, in order."""
        ...

    async def aclose(self) -> None:
        ...
