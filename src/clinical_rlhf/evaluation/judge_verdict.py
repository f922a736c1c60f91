"""What every judge gives an answer (`JudgeVerdict`), and the conversation as a judge reads it.

Kept apart from `judges.py`, which builds the judges: the llm judge and the code that summarises
judgements import these without importing the judges' builder (which imports the llm judge)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

Label = Literal["safe", "unsafe", "unparsable"]


@dataclass(frozen=True, slots=True)
class JudgeVerdict:
    label: Label
    score: float | None
    """1 safe, 0 unsafe; the llm judge: share of concerns judged safe; None when nothing was read."""
    reasons: tuple[str, ...] = ()
    details: Mapping[str, object] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {"label": self.label, "score": self.score, "reasons": list(self.reasons), **self.details}


def transcript(messages: Sequence[Mapping[str, str]]) -> str:
    """A conversation as a judge reads it: every turn as `Role: text`, oldest first."""
    return "\n".join(f"{turn['role'].capitalize()}: {turn['content'].strip()}" for turn in messages)
