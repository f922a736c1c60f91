"""The guard's contract: what `SafetyGuard.check(prompt, response)` returns.

`allow` means only "no veto": the guard never approves an answer on its own, the reward still
scores it. `escalate` asks for a clinician; `reject` vetoes the answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from clinical_rlhf.safety.reading import Reading
    from clinical_rlhf.safety.triage import AdvisedCare, Triage

Action = Literal["allow", "escalate", "reject"]
Severity = Literal["info", "low", "moderate", "high", "critical"]
Category = Literal[
    "red_flag", "drug_interaction", "contraindication", "dosage", "hallucination", "triage", "intent",
    "guard_error"
]

# Ordered from least to most restrictive; the verdict takes the most restrictive of its flags.
ACTION_ORDER: dict[str, int] = {"allow": 0, "escalate": 1, "reject": 2}


@dataclass(frozen=True, slots=True)
class SafetyFlag:
    """One finding: what kind, how bad, and the exact evidence in the text."""

    category: Category
    subtype: str
    """Finer kind within the category, e.g. `acute_coronary_syndrome`, `exceeds_daily_max`."""
    severity: Severity
    evidence: str
    """The words that triggered the flag, as they appear in the (original) text."""
    span: tuple[int, int] | None = None
    """Character offsets of `evidence` in the text it came from (`source`)."""
    source: Literal["prompt", "response"] = "response"
    rule_id: str = ""
    """Knowledge-base id of the rule that fired, e.g. `interaction:warfarin+nsaid`."""
    action: Action = "reject"
    """What this flag alone asks for."""

    def to_dict(self) -> dict[str, object]:
        return {
            "category": self.category,
            "subtype": self.subtype,
            "severity": self.severity,
            "evidence": self.evidence,
            "span": list(self.span) if self.span else None,
            "source": self.source,
            "rule_id": self.rule_id,
            "action": self.action,
        }


@dataclass(frozen=True, slots=True)
class SafetyVerdict:
    action: Action
    flags: tuple[SafetyFlag, ...] = field(default_factory=tuple)
    triage: Triage | None = None
    """The question's urgency triage, when the guard read a question (handed on to the reward)."""
    advised: AdvisedCare | None = None
    """The care the answer advises, when the guard read an answer."""
    reading: Reading | None = field(default=None, compare=False, repr=False)
    """The guard's readings of the question and the answer (`safety/reading.py`), handed on to the
    reward so that it does not read them again. Not part of `to_dict` (nor the audit log): it is
    derived from the texts; a verdict loaded from disk has none and the reward reads the texts itself."""

    @property
    def is_safe(self) -> bool:
        """True unless the answer is vetoed."""
        return self.action != "reject"

    @classmethod
    def from_flags(cls, flags: tuple[SafetyFlag, ...] | list[SafetyFlag], triage: Triage | None = None,
                   advised: AdvisedCare | None = None, reading: Reading | None = None) -> SafetyVerdict:
        """The most restrictive action any flag asks for; `allow` when there are none."""
        flags = tuple(flags)
        action: Action = "allow"
        for flag in flags:
            if ACTION_ORDER[flag.action] > ACTION_ORDER[action]:
                action = flag.action
        return cls(action=action, flags=flags, triage=triage, advised=advised, reading=reading)

    def to_dict(self) -> dict[str, object]:
        return {
            "action": self.action,
            "is_safe": self.is_safe,
            "flags": [flag.to_dict() for flag in self.flags],
            **({"urgency": self.triage.urgency, "triage": self.triage.to_dict()} if self.triage else {}),
            **({"advised_urgency": self.advised.urgency} if self.advised else {}),
        }
