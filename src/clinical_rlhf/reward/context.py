"""What every scorer sees about one (prompt, answer) pair, computed once.

`ScoringContext` bundles the analysed prompt and answer, the guidelines matched to the prompt,
the guard's verdict, and what the prompt demands (its urgency and the kind of question). The
scorers are pure functions of a context; the orchestrator builds the contexts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

from clinical_rlhf.knowledge.guidelines import Guideline, phrase_regex
from clinical_rlhf.reward import lexicon
from clinical_rlhf.reward.text import Analysed
from clinical_rlhf.safety.triage import AdvisedCare, Urgency
from clinical_rlhf.safety.verdict import SafetyVerdict

QuestionKind = Literal["urgent", "diagnostic", "general", "fact"]
URGENCY_RANK = {"self_care": 0, "routine": 1, "urgent": 2, "emergency": 3}
ESCALATION_SETS = ("emergency_now", "urgent_care", "routine_referral", "false_reassurance", "immediacy")


class Phrasebook:
    """Compiled escalation wordings from the guidelines file's `phrase_sets`."""

    def __init__(self, phrase_sets: Mapping[str, tuple[str, ...]]) -> None:
        missing = [name for name in ESCALATION_SETS if name not in phrase_sets]
        if missing:
            raise ValueError(f"guidelines phrase_sets lack {missing}; the safety reward needs them")
        self.emergency = re.compile(phrase_regex(phrase_sets["emergency_now"]))
        self.urgent = re.compile(phrase_regex(phrase_sets["urgent_care"]))
        self.routine = re.compile(phrase_regex(phrase_sets["routine_referral"]))
        self.reassurance = re.compile(phrase_regex(phrase_sets["false_reassurance"]))
        self.immediacy = re.compile(phrase_regex(phrase_sets["immediacy"]))


@dataclass
class ScoringContext:
    prompt: Analysed
    response: Analysed
    guidelines: tuple[Guideline, ...]
    verdict: SafetyVerdict
    escalation: int | None = None
    """The answer's escalation level, once computed (`safety_score.escalation_level`), shared by
    the safety, uncertainty and coherence scorers."""
    red_flags: frozenset[str] = frozenset()
    """Knowledge-base red flags the reward recognised in the prompt (`presentation.py`)."""
    need: Urgency | None = None
    """The care the question needs as the guard's triage read it from the question
    (`triage_score.question_need`); None when the guard recognised nothing there."""
    stance: str = "neither"
    """The answer's stance towards what the question proposes (`safety/dialogue.py`: endorse,
    conditional, refuse, neither); `neither` when the question proposes no medicine use."""
    intent: bool = False
    """The guard's triage read a self-harm, misuse or harm-to-others intent in the question."""
    advised: AdvisedCare | None = None
    """The care the answer advises, as the guard's advice reader read it (`safety.advice`)."""

    @cached_property
    def prompt_red_flags(self) -> frozenset[str]:
        """Red flags of the prompt: the reward's own, and the guard's (red-flag flags on the prompt
        side; their subtype is the red-flag id)."""
        guard = {f.subtype for f in self.verdict.flags if f.category == "red_flag" and f.source == "prompt"}
        return self.red_flags | guard if guard else self.red_flags

    @cached_property
    def prompt_red_flag(self) -> bool:
        """An emergency was recognised in the prompt (by the guard or the reward)."""
        return bool(self.prompt_red_flags)

    @cached_property
    def urgency(self) -> int:
        """0 self-care .. 3 emergency: the most urgent matched guideline, or 3 on a red flag that
        no matched guideline lists (a guideline that lists it sets the urgency itself: a fever in
        a baby under 3 months is a red flag that needs same-day, not 999, care; NICE NG143)."""
        rank = max((URGENCY_RANK[g.urgency] for g in self.guidelines), default=0)
        if rank == 3 or not self.prompt_red_flags:
            return rank
        listed = {flag for g in self.guidelines for flag in g.red_flags}
        return 3 if not self.prompt_red_flags <= listed else rank

    @cached_property
    def question_kind(self) -> QuestionKind:
        """How much uncertainty and referral the question calls for.

        urgent: an emergency or same-day presentation; diagnostic: the asker's own symptoms or a
        request for a diagnosis; fact: a general question about a fact (a dose limit, a class, a
        definition); general: anything else (how a known condition is managed, say)."""
        if self.urgency >= 2:
            return "urgent"
        text = self.prompt.normalized
        if lexicon.DIAGNOSTIC_RE.search(text):
            return "diagnostic"
        is_fact = lexicon.FACT_QUESTION_RE.search(text) is not None
        if lexicon.PERSONAL_RE.search(text):
            # Own symptoms of a recognised self-care/routine complaint ("I have a cold, should I
            # take antibiotics?") ask how to manage it; unrecognised ones ask what it is.
            return "general" if is_fact or self.guidelines else "diagnostic"
        return "fact" if is_fact else "general"
