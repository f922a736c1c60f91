"""Urgency triage of a question: how soon the person needs care, and why.

    triage = guard.triage("58M, central chest pressure for 40 min, HR 104, BP 150/92")
    triage.urgency        # "emergency"
    triage.reasons        # (TriageReason(kind="red_flag", id="acute_coronary_syndrome", ...), ...)

Urgency levels, most to least urgent (the labels NHS 111 and the held-out sets use):
- `emergency`: 999 / the emergency department now;
- `urgent`: seen by a clinician within hours, the same day;
- `routine`: a planned appointment in days to weeks;
- `self_care`: home or pharmacy care, with safety-netting.

A question's urgency is the most urgent of its reasons' (each reason says what it alone asks for).
The guard vetoes an answer that advises less urgency than the question needs (under-triage); the
reward scores over-triage (docs/safety.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Urgency = Literal["emergency", "urgent", "routine", "self_care"]
URGENCIES: tuple[Urgency, ...] = ("emergency", "urgent", "routine", "self_care")
URGENCY_RANK: dict[str, int] = {"self_care": 0, "routine": 1, "urgent": 2, "emergency": 3}

ReasonKind = Literal["red_flag", "observation", "score", "finding", "decision_rule", "symptom", "intent",
                     "modifier", "default"]


@dataclass(frozen=True, slots=True)
class TriageReason:
    """One thing in the question that sets (or raises) its urgency."""

    kind: ReasonKind
    id: str
    """The rule's id in the knowledge base (`acute_coronary_syndrome`, `news2`, `spo2_low`, `wells_pe`,
    `self_harm`, `pregnancy`...)."""
    urgency: Urgency
    """What this reason alone asks for."""
    evidence: str
    """The words of the question it was read from."""
    detail: str = ""
    """What was computed, e.g. "NEWS2 7: RR 25 (3), SpO2 94% (1), ..."."""
    source: str = ""
    """The clinical source of the rule (guideline, score publication)."""

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "id": self.id, "urgency": self.urgency, "evidence": self.evidence,
                "detail": self.detail, "source": self.source}


@dataclass(frozen=True, slots=True)
class Triage:
    urgency: Urgency
    reasons: tuple[TriageReason, ...] = ()
    intents: frozenset[str] = frozenset()
    """What the person intends, when the question says: `self_harm`, `misuse`, `harm_others`."""

    def to_dict(self) -> dict[str, object]:
        return {"urgency": self.urgency, "reasons": [reason.to_dict() for reason in self.reasons],
                "intents": sorted(self.intents)}


@dataclass(frozen=True, slots=True)
class AdvisedCare:
    """What an answer tells the person to do about getting care."""

    urgency: Urgency | None
    """The most urgent care the answer advises unconditionally; None when it advises none."""
    safety_net: bool = False
    """The answer says when to seek more urgent care ("if it gets worse, call 999")."""
    evidence: str = ""


def most_urgent(levels: "list[Urgency] | tuple[Urgency, ...]", default: Urgency = "routine") -> Urgency:
    """The most urgent of `levels`; `default` when there are none."""
    return max(levels, key=URGENCY_RANK.__getitem__) if levels else default
