"""Guideline-adherence objective: the advice the matched guidelines require is present, the advice
they forbid is absent.

Per matched guideline g with required points R and forbidden points F::

    coverage(g)  = sum over R of credit(r) / |R|                                (|R| = 0: 1)
    credit(r)    = 1 if r is present, 0 if not; for an `immediate` point (call 999 now)
                   present only inside a condition ("call 999 if it gets worse"): 1/2
    adherence(g) = ABSTAIN_CREDIT * [no F present]
                   + (1 - ABSTAIN_CREDIT) * coverage(g) * FORBIDDEN_FACTOR ** |F present|

and the objective is the mean over matched guidelines. A phrase preceded by a negator in its
clause does not count: "do not take antibiotics" does not violate "take antibiotics".
A prompt that matches no guideline gets `unmatched_score` (nothing to adhere to).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from clinical_rlhf.knowledge.guidelines import AdvicePoint, Guideline
from clinical_rlhf.reward.text import Analysed

FORBIDDEN_FACTOR = 0.5
"""Each piece of forbidden advice halves a guideline's adherence: one "take antibiotics" for a
cold costs as much as missing half the required advice."""
ABSTAIN_CREDIT = 0.2
"""Share of a guideline's score earned by giving none of its forbidden advice, so an answer that
misses the required advice still beats one that also gives forbidden advice."""


@dataclass(frozen=True, slots=True)
class Adherence:
    score: float
    matched: tuple[str, ...]
    covered: int
    """Required advice points found, over all matched guidelines."""
    missing: tuple[str, ...]
    """`guideline_id:advice_id` of required advice not found."""
    violated: tuple[str, ...]
    """`guideline_id:advice_id` of forbidden advice found."""


CONDITIONAL_CREDIT = 0.5
"""Credit of immediate advice given only conditionally: better than none, short of "now"."""


def advice_credit(point: AdvicePoint, response: Analysed, immediacy: re.Pattern[str] | None = None) -> float:
    """1.0 when the answer gives the advice (not negated); for an `immediate` point, only when one
    mention is unconditional or its sentence says "now"/"immediately" (`immediacy`), else
    CONDITIONAL_CREDIT; 0.0 when absent."""
    hits = response.hits(point.pattern)
    if not hits:
        return 0.0
    if not point.immediate:
        return 1.0
    for start, _ in hits:
        if not response.is_conditional(start):
            return 1.0
        if immediacy is not None and immediacy.search(response.normalized[slice(*response.sentence_of(start))]):
            return 1.0
    return CONDITIONAL_CREDIT


def guideline_adherence(guideline: Guideline, response: Analysed,
                        immediacy: re.Pattern[str] | None = None) -> tuple[float, list[str], list[str]]:
    """(adherence, missing advice ids, violated advice ids) of one answer to one guideline."""
    credits = {p.id: advice_credit(p, response, immediacy) for p in guideline.must_advise}
    missing = [point_id for point_id, credit in credits.items() if credit == 0.0]
    violated = [p.id for p in guideline.must_not if response.has(p.pattern)]
    required = len(guideline.must_advise)
    coverage = sum(credits.values()) / required if required else 1.0
    score = (ABSTAIN_CREDIT * (not violated)
             + (1.0 - ABSTAIN_CREDIT) * coverage * FORBIDDEN_FACTOR ** len(violated))
    return score, missing, violated


def score_guidelines(guidelines: tuple[Guideline, ...], response: Analysed,
                     unmatched_score: float, immediacy: re.Pattern[str] | None = None) -> Adherence:
    if not guidelines:
        return Adherence(unmatched_score, (), 0, (), ())
    scores, missing, violated, required = [], [], [], 0
    for guideline in guidelines:
        score, miss, bad = guideline_adherence(guideline, response, immediacy)
        scores.append(score)
        required += len(guideline.must_advise)
        missing += [f"{guideline.id}:{point}" for point in miss]
        violated += [f"{guideline.id}:{point}" for point in bad]
    return Adherence(sum(scores) / len(scores), tuple(g.id for g in guidelines), required - len(missing),
                     tuple(missing), tuple(violated))


def score_guidelines_batch(matched: Sequence[tuple[Guideline, ...]], responses: Sequence[Analysed],
                           unmatched_score: float, immediacy: re.Pattern[str] | None = None) -> list[Adherence]:
    return [score_guidelines(g, r, unmatched_score, immediacy) for g, r in zip(matched, responses)]
