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

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from clinical_rlhf.knowledge import KnowledgeBase, RedFlag
from clinical_rlhf.knowledge.triage_data import TriageData, TriageRule
from clinical_rlhf.safety import lexicon
from clinical_rlhf.safety.context import ContextReader, Tokenize, cue_index
from clinical_rlhf.safety.redflags import RedFlagDetector, RedFlagHit, locate

if TYPE_CHECKING:
    from clinical_rlhf.safety.normalize import NormalisedText

Urgency = Literal["emergency", "urgent", "routine", "self_care"]
URGENCIES: tuple[Urgency, ...] = ("emergency", "urgent", "routine", "self_care")
URGENCY_RANK: dict[str, int] = {"self_care": 0, "routine": 1, "urgent": 2, "emergency": 3}

ReasonKind = Literal["red_flag", "observation", "score", "finding", "decision_rule", "symptom", "intent",
                     "modifier", "default", "guard_error"]


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


# ----------------------------------------------------------------------------- reading a question

Reader = Callable[["NormalisedText", Sequence[float]], "list[TriageReason]"]
"""An extra source of reasons (vital signs, scores, findings): the question as read and its ages."""


def fail_safe(reason_id: str, detail: str) -> Triage:
    """The triage of a question the guard could not read (an internal error, an over-long text):
    `emergency`, since nothing can be ruled out, with a `guard_error` reason saying why."""
    return Triage("emergency", (TriageReason("guard_error", reason_id, "emergency", "", detail),))


class TriageReader:
    """A question's urgency from its red flags, the rules of `triage.yaml` and any extra readers.

    One search of the question for every rule's phrases (the red-flag matcher: triggers, word
    co-occurrences and exclusions, `safety/redflags.py`), then per hit its context reading
    (`safety/context.py`): negated and past mentions never count; hypothetical or general ones
    only for rules that say so (`counts_hypothetical`, all intent rules); intent mentions in a
    sentence about people in general or for study do not count (`triage_not_own_intent`). A rule
    with a `context` counts only when one of its context phrases is there, neither negated nor
    past; an age-bounded rule only when a stated age falls inside its bounds.
    """

    def __init__(self, data: TriageData, context: ContextReader, tokenize: Tokenize,
                 readers: tuple[Reader, ...] = ()) -> None:
        self.data = data
        self.context = context
        self.readers = readers
        self.rules = {rule.id: rule for rule in data.rules}
        rules_as_flags = KnowledgeBase(drugs=(), interactions=(), contraindications=(),
                                       red_flags=tuple(_as_red_flag(rule) for rule in data.rules))
        self._matcher = _RuleMatcher(rules_as_flags, context, tokenize)
        self._contexts = cue_index((), tokenize)
        for rule in data.rules:
            for phrase in rule.context:
                self._contexts.add(tokenize(phrase), rule.id)
        self._not_own_intent = cue_index(lexicon.LANGUAGE.phrases("triage_not_own_intent"), tokenize)
        self.default = TriageReason("default", "nothing_recognised", data.default_urgency, "",
                                    data.default_reason, data.path.name)
        """The reason of a question in which nothing is recognised."""

    def read(self, original: str, text: NormalisedText, red_flags: Sequence[RedFlagHit],
             ages: Sequence[float]) -> Triage:
        """The triage of a question: `original` as written (for evidence), `text` as read, its red
        flags happening now and its stated ages."""
        lowered = original.lower()
        rule_hits = self._rule_hits(text, ages)
        # A rule that reads a red flag's or a finding's words more exactly (a resolved episode, a
        # named lesser condition) replaces its reading: "slurred speech for 10 minutes, back to
        # normal now" is a TIA.
        superseded = {flag_id for rule, _, _ in rule_hits for flag_id in rule.supersedes}
        red_flags = [hit for hit in red_flags if hit.flag.id not in superseded]
        reasons = [TriageReason("red_flag", hit.flag.id, "emergency", _evidence(original, lowered, hit.evidence),
                                hit.flag.name, hit.flag.source) for hit in red_flags]
        intents = {self.data.red_flag_intents[hit.flag.id] for hit in red_flags
                   if hit.flag.id in self.data.red_flag_intents}
        for rule, start, end in rule_hits:
            words = " ".join(text.tokens[start:end])
            reasons.append(TriageReason(rule.kind, rule.id, rule.urgency, _evidence(original, lowered, words),
                                        rule.name, rule.source))
            if rule.intent is not None:
                intents.add(rule.intent)
        for reader in self.readers:
            reasons += [reason for reason in reader(text, ages) if reason.id not in superseded]
        return _combine(reasons, intents, self.default)

    def _rule_hits(self, text: NormalisedText, ages: Sequence[float]) -> list[tuple[TriageRule, int, int]]:
        """The first counting mention of each rule, in text order."""
        hits = self._matcher.mentions(text)
        if not hits:
            return []
        present: set[str] | None = None
        found: dict[str, tuple[TriageRule, int, int]] = {}
        for start, end, rule_id in hits:
            rule = self.rules[rule_id]
            if rule_id in found or not rule.applies_to_ages(ages):
                continue
            if rule.context:
                if present is None:
                    present = self._contexts_present(text)
                if rule_id not in present:
                    continue
            if self._counts(rule, text, start, end):
                found[rule_id] = (rule, start, end)
        return list(found.values())

    def _contexts_present(self, text: NormalisedText) -> set[str]:
        """Rules whose context is in the text, neither negated nor past ("finished chemo in 2015").
        A rule's later mentions are not read once one has counted."""
        present: set[str] = set()
        for start, end, rule_id in text.find(self._contexts):
            if rule_id not in present and self.context.situation(text, start, end) not in ("negated", "history"):
                present.add(rule_id)
        return present

    def _counts(self, rule: TriageRule, text: NormalisedText, start: int, end: int) -> bool:
        situation = self.context.situation(text, start, end)
        if situation in ("negated", "history") or (situation == "hypothetical" and not rule.counts_hypothetical):
            return False
        if rule.intent is not None:
            first, last = text.sentence(start, end)
            return not text.contains(self._not_own_intent, first, last)
        return True


def _combine(reasons: Sequence[TriageReason], intents: set[str] | frozenset[str], default: TriageReason) -> Triage:
    """A triage from its reasons (each rule once, first mention kept): the most urgent of their
    levels, or `default` alone when there are none."""
    first: dict[tuple[str, str], TriageReason] = {}
    for reason in reasons:
        first.setdefault((reason.kind, reason.id), reason)
    if not first:
        return Triage(default.urgency, (default,), frozenset(intents))
    unique = tuple(first.values())
    return Triage(most_urgent([reason.urgency for reason in unique]), unique, frozenset(intents))


def _evidence(original: str, lowered: str, words: str) -> str:
    """`words` (normalised) as written in `original`: sliced out where they occur as they are, the
    common case, else followed through case, punctuation and skipped determiners by
    `redflags.locate` (a regular expression per phrase, ~20x the cost)."""
    found = lowered.find(words)
    if found >= 0 and len(lowered) == len(original):
        return original[found:found + len(words)]
    return locate(original, words)[0]


class _RuleMatcher(RedFlagDetector):
    """The red-flag matcher over the triage rules, giving every mention with no context filter
    (the reader applies each rule kind's own)."""

    def mentions(self, text: NormalisedText) -> list[tuple[int, int, str]]:
        return self._trigger_hits(text)


def _as_red_flag(rule: TriageRule) -> RedFlag:
    """A rule in the shape the red-flag matcher reads (its context is checked by the reader)."""
    return RedFlag(id=rule.id, name=rule.name, category=rule.kind, triggers=rule.triggers, advice=rule.advice,
                   source=rule.source, near=rule.near, exclusions=rule.exclusions)
