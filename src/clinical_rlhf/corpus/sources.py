"""The facts the corpus is written from, read through the knowledge APIs and arranged for writing.

Nothing clinical is decided here: which presentations exist, what to advise, which drugs have
which limits and which combinations interact all come from `clinical_rlhf.knowledge` (drugs,
interactions, contraindications, red flags) and `clinical_rlhf.knowledge.guidelines`. This module
only sorts them into the corpus's five categories and drops what a patient would not ask about
(a drug without a stated maximum or tablet strength cannot make a dosing question).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from clinical_rlhf.knowledge import Contraindication, Drug, Interaction, KnowledgeBase, load_knowledge
from clinical_rlhf.knowledge.guidelines import (
    AdvicePoint,
    Guideline,
    GuidelineMatcher,
    load_guidelines,
    load_phrase_sets,
    normalize_text,
    phrase_regex,
)
from clinical_rlhf.knowledge.language import load_language

# Guideline urgency -> corpus category. Emergencies and same-day presentations are the
# "emergency" category (red-flag questions); routine ones are long-term conditions managed
# with a clinician; self-care ones are everyday complaints.
_CATEGORY_BY_URGENCY = {
    "emergency": "emergency", "urgent": "emergency",
    "routine": "chronic_condition", "self_care": "everyday_complaint",
}
# Where urgency alone sorts a presentation into the wrong corpus bucket. This is a choice of
# corpus organisation (a one-off urinary infection is an everyday complaint even though the
# guideline routes it to a clinician), not a clinical statement; unknown ids are ignored.
_CATEGORY_OVERRIDES = {"uti_women": "everyday_complaint"}


@dataclass(frozen=True, slots=True)
class Presentation:
    """Something a patient describes (a guideline presentation or a red flag) and what to advise."""

    id: str
    """Knowledge id: `guideline:<id>` or `red_flag:<id>`."""
    category: str
    urgency: str
    triggers: tuple[str, ...]
    """Phrases that name the presentation in a question (one goes into each prompt)."""
    context: tuple[str, ...]
    """When non-empty, one of these must also be in the prompt (e.g. an infant's age)."""
    advice: tuple[AdvicePoint, ...]
    """What a safe answer must say (guideline `must_advise`)."""
    red_flag_advice: str | None
    """The red flag's one-sentence advice, for red-flag presentations."""
    must_not: tuple[AdvicePoint, ...]
    """What a safe answer must not say; unsafe answers draw on it."""


@dataclass(frozen=True, slots=True)
class InteractionCase:
    """An interaction rule with the concrete drugs on each side (classes expanded)."""

    rule: Interaction
    first: tuple[Drug, ...]
    second: tuple[Drug, ...]


@dataclass(frozen=True, slots=True)
class ContraindicationCase:
    rule: Contraindication
    drugs: tuple[Drug, ...]


@dataclass(frozen=True)
class Sources:
    knowledge: KnowledgeBase
    guidelines: tuple[Guideline, ...]
    presentations: dict[str, tuple[Presentation, ...]]
    """Category -> presentations (emergency, chronic_condition, everyday_complaint)."""
    dosing_drugs: tuple[Drug, ...]
    interaction_cases: tuple[InteractionCase, ...]
    condition_contraindications: tuple[ContraindicationCase, ...]
    age_contraindications: tuple[ContraindicationCase, ...]
    escalation: dict[str, re.Pattern[str]]
    """Phrase-set name -> pattern (`emergency_now`, `urgent_care`, `routine_referral`, ...)."""
    matcher: GuidelineMatcher = field(repr=False)
    red_flag_phrases: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = field(repr=False, default=())
    """(red flag id, trigger word-forms, requires_any word-forms), normalised once at load."""

    def matched_guidelines(self, prompt: str) -> tuple[Guideline, ...]:
        return self.matcher.match(prompt)

    def matched_red_flags(self, prompt: str) -> tuple[str, ...]:
        """Ids of red flags whose trigger (and `requires_any`, when set) occur in `prompt`."""
        text = _words(prompt)
        return tuple(
            flag_id for flag_id, triggers, requires in self.red_flag_phrases
            if any(t in text for t in triggers) and (not requires or any(r in text for r in requires))
        )


def load_sources(knowledge_dir: Path | None = None) -> Sources:
    """Read the knowledge base and the guidelines (shipped, or overridden from `knowledge_dir`)."""
    knowledge = load_knowledge(knowledge_dir)
    guidelines = load_guidelines(knowledge_dir)
    phrase_sets = load_phrase_sets(knowledge_dir)
    presentations: dict[str, list[Presentation]] = {
        "emergency": [], "chronic_condition": [], "everyday_complaint": []
    }
    for guideline in guidelines:
        category = _CATEGORY_OVERRIDES.get(guideline.id, _CATEGORY_BY_URGENCY[guideline.urgency])
        presentations[category].append(Presentation(
            id=f"guideline:{guideline.id}", category=category, urgency=guideline.urgency,
            triggers=guideline.triggers, context=guideline.context, advice=guideline.must_advise,
            red_flag_advice=None, must_not=guideline.must_not,
        ))
    for flag in sorted(knowledge.red_flags, key=lambda f: f.id):
        presentations["emergency"].append(Presentation(
            id=f"red_flag:{flag.id}", category="emergency", urgency="emergency",
            triggers=flag.triggers, context=flag.requires_any, advice=(),
            red_flag_advice=flag.advice, must_not=(),
        ))
    return Sources(
        knowledge=knowledge,
        guidelines=guidelines,
        presentations={name: tuple(items) for name, items in presentations.items()},
        dosing_drugs=tuple(d for d in knowledge.drugs if _askable_dose(d)),
        interaction_cases=_interaction_cases(knowledge),
        condition_contraindications=_contraindication_cases(knowledge, age_limited=False),
        age_contraindications=_contraindication_cases(knowledge, age_limited=True),
        escalation={name: re.compile(phrase_regex(phrases)) for name, phrases in phrase_sets.items()},
        matcher=GuidelineMatcher(guidelines),
        red_flag_phrases=tuple(
            (flag.id, tuple(_words(t) for t in flag.triggers), tuple(_words(r) for r in flag.requires_any))
            for flag in knowledge.red_flags
        ),
    )


_MG_AMOUNT = re.compile(r"(\d+(?:\.\d+)?)\s*mg\b")
_NOT_SELF_GIVEN = ("intraven", "infusion", "injection", "injected")


def _askable_dose(drug: Drug) -> bool:
    """A patient can ask "how much can I take" only of a drug with a ceiling and a tablet size.

    The safe answer quotes the usual dose verbatim, so a drug whose usual-dose text or tablet
    strengths go above its own ceiling (a loading dose, a weekly regimen next to a daily cap)
    is left out rather than quoted next to a "do not exceed" it contradicts.
    """
    ceiling = drug.max_daily_mg if drug.max_daily_mg is not None else drug.max_weekly_mg
    if ceiling is None or not drug.common_strengths_mg or not drug.usual_adult_dose:
        return False
    if any(word in drug.usual_adult_dose.lower() for word in _NOT_SELF_GIVEN):
        return False
    amounts = [float(value) for value in _MG_AMOUNT.findall(drug.usual_adult_dose)]
    return all(amount <= ceiling for amount in (*amounts, *drug.common_strengths_mg))


def _expand(knowledge: KnowledgeBase, reference: str) -> tuple[Drug, ...]:
    if reference.startswith("class:"):
        return tuple(sorted(knowledge.drugs_in_class(reference), key=lambda d: d.name))
    drug = knowledge.drug(reference)
    return (drug,) if drug is not None else ()


def _interaction_cases(knowledge: KnowledgeBase) -> tuple[InteractionCase, ...]:
    cases = []
    for rule in sorted(knowledge.interactions, key=lambda r: r.id):
        first, second = _expand(knowledge, rule.a), _expand(knowledge, rule.b)
        if first and second:
            cases.append(InteractionCase(rule, first, second))
    return tuple(cases)


def _contraindication_cases(knowledge: KnowledgeBase, *, age_limited: bool) -> tuple[ContraindicationCase, ...]:
    cases = []
    for rule in sorted(knowledge.contraindications, key=lambda r: r.id):
        if age_limited != (rule.age_limited and not rule.condition_terms):
            continue
        drugs = _expand(knowledge, rule.drug)
        if drugs:
            cases.append(ContraindicationCase(rule, drugs))
    return tuple(cases)


_NON_WORD = re.compile(r"[\W_]+")
# The red-flag file's matching convention (see its header): apostrophes dropped and the
# determiners of language.yaml skipped on both sides, so "pain in my chest" also matches "pain in the chest".
_DETERMINERS = load_language().words("determiners")


def _words(text: str) -> str:
    """Text as space-separated words, normalised the way red-flag triggers are matched."""
    plain = _NON_WORD.sub(" ", normalize_text(text).replace("'", "").replace("\u2019", ""))
    return " " + " ".join(word for word in plain.split() if word not in _DETERMINERS) + " "
