"""Request bodies of the OpenAI-compatible endpoints, validated strictly.

One rule for the optional fields of OpenAI's API (docs/serving.md, "Request fields"): a field
is accepted when this server honours it, or when its value asks for what the server does anyway
(`n: 1`, `logprobs: false`, `response_format: {"type": "text"}`, penalties of 0, a `seed` or a
`user`, which change nothing a client can rely on here). A value that asks for something else
(`n: 2`, `logprobs: true`, a JSON response format, a non-zero penalty) or a field the server does
not know (`tools`, ...) is refused with a message that names it, rather than a request that
silently behaves differently from what the client asked for. Every free-text field is capped
(docs/serving.md, Security, "Limits"). Responses are plain dicts built in `responses.py`.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from clinical_rlhf.feedback.preferences import OBJECTIVES

# Caps on free text (characters), so the guard's work per request is bounded whatever the body
# holds (docs/serving.md, Security, "Limits"). Longer text is a 400 naming the field; a body over
# `serve.max_body_bytes` is a 413 before it is parsed.
MAX_TEXT_CHARS = 32_768
"""One message's text, a completion prompt, a corrected answer: ~20 pages of a case history."""
MAX_CONVERSATION_CHARS = 131_072
"""All messages of one chat request together (the guard reads every user turn)."""
MAX_RATIONALE_CHARS = 10_000
MAX_SHORT_CHARS = 256
"""Identifiers and short strings: `model`, `name`, `user`, each stop sequence."""

Text = Annotated[str, Field(max_length=MAX_TEXT_CHARS)]
Short = Annotated[str, Field(max_length=MAX_SHORT_CHARS)]
Temperature = Annotated[float, Field(ge=0.0, le=2.0)]
TopP = Annotated[float, Field(gt=0.0, le=1.0)]
MaxTokens = Annotated[int, Field(ge=1)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TextPart(_Body):
    type: Literal["text"]
    text: Text


class ChatMessage(_Body):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | Annotated[list[TextPart], Field(max_length=64)]
    name: Short | None = None

    @field_validator("content")
    @classmethod
    def _capped(cls, content: str | list[TextPart]) -> str | list[TextPart]:
        if isinstance(content, str) and len(content) > MAX_TEXT_CHARS:
            raise ValueError(f"String should have at most {MAX_TEXT_CHARS} characters")
        return content

    @property
    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "\n".join(part.text for part in self.content)


class StreamOptions(_Body):
    include_usage: bool = False


class TextResponseFormat(_Body):
    type: Literal["text"]


class _Sampling(_Body):
    model: Short
    max_tokens: MaxTokens | None = None
    temperature: Temperature | None = None
    top_p: TopP | None = None
    n: Literal[1] = 1
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: Short | list[Short] | None = None
    user: Short | None = None
    """Accepted for compatibility and ignored: the API key's id is what the audit log records."""
    seed: int | None = None
    """Accepted and ignored: requests arriving together are sampled as one batch, so a seed could not
    make one request's answer reproducible. Send `temperature: 0` for a repeatable (greedy) answer."""
    logprobs: bool | None = None
    """Only `false`: token log-probabilities are not returned."""
    presence_penalty: float | None = None
    """Only 0 (no penalty), the sampling PPO trained with."""
    frequency_penalty: float | None = None
    """Only 0 (no penalty), the sampling PPO trained with."""

    @field_validator("logprobs")
    @classmethod
    def _no_logprobs(cls, value: bool | None) -> bool | None:
        if value:
            raise ValueError("only false is supported (this server does not return token log-probabilities)")
        return value

    @field_validator("presence_penalty", "frequency_penalty")
    @classmethod
    def _no_penalty(cls, value: float | None) -> float | None:
        if value not in (None, 0):
            raise ValueError("only 0 is supported (answers are sampled as PPO trained them, without penalties)")
        return value

    @field_validator("stop")
    @classmethod
    def _at_most_four(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences are supported")
        if value == "" or (isinstance(value, list) and "" in value):
            raise ValueError("a stop sequence must not be empty")
        return value

    @property
    def stop_sequences(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)


class ChatCompletionRequest(_Sampling):
    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    max_completion_tokens: MaxTokens | None = None
    response_format: TextResponseFormat | None = None
    """Only `{"type": "text"}`: answers are free text checked by the guard, never JSON."""

    @field_validator("messages")
    @classmethod
    def _ends_with_user(cls, messages: list[ChatMessage]) -> list[ChatMessage]:
        if messages[-1].role != "user":
            raise ValueError("the last message must have role `user` (the question to answer)")
        total = sum(len(message.text) for message in messages)
        if total > MAX_CONVERSATION_CHARS:
            raise ValueError(f"the messages hold {total} characters together, more than this server accepts "
                             f"({MAX_CONVERSATION_CHARS}); send a shorter conversation")
        return messages

    @property
    def requested_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class CompletionRequest(_Sampling):
    prompt: Text
    echo: Literal[False] = False

    @property
    def requested_tokens(self) -> int | None:
        return self.max_tokens


Judgement = Literal["corrected", "served", "tie"]
Objective = Literal[OBJECTIVES]  # type: ignore[valid-type]
_ANNOTATOR = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")


class FeedbackRequest(_Body):
    """`POST /v1/feedback`: a clinician's judgement of one served completion (docs/serving.md)."""

    completion_id: Annotated[str, Field(min_length=1, max_length=200)]
    rating: Literal["good", "bad"] | int | None = None
    """`good` / `bad`, or 1-5 (4-5 count as good, 1-2 as bad, 3 as neither)."""
    corrected_answer: Text | None = None
    rationale: Annotated[str, Field(max_length=MAX_RATIONALE_CHARS)] | None = None
    objectives: dict[Objective, Judgement] | None = None
    """Per reward objective, which answer is better: the `corrected` one, the `served` one, or `tie`."""
    annotator: str | None = None
    """Who judged (an id, not a name); default: the API key's id."""

    @field_validator("rating", mode="before")
    @classmethod
    def _rating(cls, value: object) -> object:
        valid = value in ("good", "bad") or (type(value) is int and 1 <= value <= 5)
        if value is not None and not valid:
            raise ValueError('must be "good", "bad" or an integer from 1 to 5')
        return value

    @field_validator("annotator")
    @classmethod
    def _annotator(cls, value: str | None) -> str | None:
        if value is not None and not _ANNOTATOR.fullmatch(value):
            raise ValueError("must be an id of up to 64 letters, digits and _ . @ - (not a name: it is "
                             "stored with the training data)")
        return value

    @field_validator("corrected_answer", "rationale")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be empty; leave the field out instead")
        return value.strip() if value is not None else None

    @model_validator(mode="after")
    def _judges_something(self) -> FeedbackRequest:
        if self.rating is None and self.corrected_answer is None:
            raise ValueError("send a `rating` (good, bad or 1-5), a `corrected_answer`, or both")
        if self.objectives and self.corrected_answer is None:
            raise ValueError("`objectives` compare the corrected answer with the served one; they need "
                             "`corrected_answer`")
        return self


SUPPORTED_FIELDS = {
    "chat_completions": sorted(ChatCompletionRequest.model_fields),
    "completions": sorted(CompletionRequest.model_fields),
    "feedback": sorted(FeedbackRequest.model_fields),
}
"""Listed in the 400 message for an unsupported field."""
