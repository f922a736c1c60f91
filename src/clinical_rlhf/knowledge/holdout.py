"""Knowledge held out of training: the entries `safety.holdout_knowledge` names, removed from
the base the training guard reads and kept for the `holdout` judge of the evaluation.

A judge built from knowledge the policy's training signal never contained tells whether the
policy learned safe behaviour or only the surface of its guard (docs/evaluation.md).

Selectors:
    red_flag:<id>                 one red flag
    red_flag_category:<category>  every red flag of a category (`cardiovascular`, ...)
    interaction:<id>              one interaction rule
    contraindication:<id>         one contraindication rule
    dosage:<drug>                 that drug's maximum doses (the drug itself stays known)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from clinical_rlhf.errors import ConfigError
from clinical_rlhf.knowledge.loader import load_knowledge
from clinical_rlhf.knowledge.model import KnowledgeBase

KINDS = ("red_flag", "red_flag_category", "interaction", "contraindication", "dosage")
_DOSE_LIMITS = ("max_daily_mg", "max_single_mg", "pediatric_max_mg_per_kg_day", "max_weekly_mg",
                "pediatric_max_single_mg_per_kg", "max_single_units", "max_daily_units")


def _parse(knowledge: KnowledgeBase, selectors: Sequence[str]) -> dict[str, set[str]]:
    """Selector kind -> the ids it names, each checked against the knowledge base."""
    known = {
        "red_flag": {flag.id for flag in knowledge.red_flags},
        "red_flag_category": {flag.category for flag in knowledge.red_flags},
        "interaction": {rule.id for rule in knowledge.interactions},
        "contraindication": {rule.id for rule in knowledge.contraindications},
        "dosage": {drug.name for drug in knowledge.drugs},
    }
    chosen: dict[str, set[str]] = {kind: set() for kind in KINDS}
    for selector in selectors:
        kind, _, name = selector.partition(":")
        if kind not in known or not name:
            raise ConfigError(f"safety.holdout_knowledge: {selector!r} is not `<kind>:<name>` with a kind "
                              f"among {', '.join(KINDS)}")
        if name not in known[kind]:
            raise ConfigError(f"safety.holdout_knowledge: {selector!r} names no {kind} of the knowledge base; "
                              f"known ones include {', '.join(sorted(known[kind])[:8])}")
        chosen[kind].add(name)
    return chosen


def _partition(knowledge: KnowledgeBase, selectors: Sequence[str], keep_selected: bool) -> KnowledgeBase:
    chosen = _parse(knowledge, selectors)

    def selected_flag(flag) -> bool:
        return flag.id in chosen["red_flag"] or flag.category in chosen["red_flag_category"]

    def drug(entry):
        limits_held_out = entry.name in chosen["dosage"]
        if limits_held_out == keep_selected:
            return entry
        return dataclasses.replace(entry, **dict.fromkeys(_DOSE_LIMITS, None))

    return KnowledgeBase(
        drugs=tuple(drug(entry) for entry in knowledge.drugs),
        interactions=tuple(r for r in knowledge.interactions if (r.id in chosen["interaction"]) == keep_selected),
        contraindications=tuple(r for r in knowledge.contraindications
                                if (r.id in chosen["contraindication"]) == keep_selected),
        red_flags=tuple(f for f in knowledge.red_flags if selected_flag(f) == keep_selected),
        directory=knowledge.directory)


def without_entries(knowledge: KnowledgeBase, selectors: Sequence[str]) -> KnowledgeBase:
    """A copy of `knowledge` without what `selectors` name: the base the training guard reads.
    Every drug stays (names are vocabulary, not a rule); a `dosage:` selector blanks its limits."""
    return _partition(knowledge, selectors, keep_selected=False)


def only_entries(knowledge: KnowledgeBase, selectors: Sequence[str]) -> KnowledgeBase:
    """The complement: every drug, with dose limits only where a `dosage:` selector names it,
    and only the selected rules: the base the `holdout` judge reads."""
    return _partition(knowledge, selectors, keep_selected=True)


def training_knowledge(knowledge_dir, holdout: Sequence[str]) -> KnowledgeBase:
    """The knowledge base of `knowledge_dir` (shipped when None) as the training guard sees it."""
    knowledge = load_knowledge(knowledge_dir)
    return without_entries(knowledge, holdout) if holdout else knowledge
