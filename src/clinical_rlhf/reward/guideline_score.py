"""Guideline-adherence objective: the advice the matched guidelines require is present, the advice
they forbid is absent.

Per matched guideline g with required points R and forbidden points F::

    coverage(g)  = |R present| / |R|                                           (|R| = 0: 1)
    adherence(g) = ABSTAIN_CREDIT * [no F present]
                   + (1 - ABSTAIN_CREDIT) * coverage(g) * FORBIDDEN_FACTOR ** |F present|

and the objective is the mean over matched guidelines. A phrase preceded by a negator in its
clause does not count: "do not take antibiotics" does not violate "take antibiotics".
A prompt that matches no guideline gets `unmatched_score` (nothing to adhere to).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from clinical_rlhf.knowledge.guidelines import Guideline
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


def guideline_adherence(guideline: Guideline, response: Analysed) -> tuple[float, list[str], list[str]]:
    """(adherence, missing advice ids, violated advice ids) of one answer to one guideline."""
    missing = [p.id for p in guideline.must_advise if not response.has(p.pattern)]
    violated = [p.id for p in guideline.must_not if response.has(p.pattern)]
    required = len(guideline.must_advise)
    coverage = (required - len(missing)) / required if required else 1.0
    score = (ABSTAIN_CREDIT * (not violated)
             + (1.0 - ABSTAIN_CREDIT) * coverage * FORBIDDEN_FACTOR ** len(violated))
    return score, missing, violated


def score_guidelines(guidelines: tuple[Guideline, ...], response: Analysed,
                     unmatched_score: float) -> Adherence:
    if not guidelines:
        return Adherence(unmatched_score, (), 0, (), ())
    scores, missing, violated, required = [], [], [], 0
    for guideline in guidelines:
        score, miss, bad = guideline_adherence(guideline, response)
        scores.append(score)
        required += len(guideline.must_advise)
        missing += [f"{guideline.id}:{point}" for point in miss]
        violated += [f"{guideline.id}:{point}" for point in bad]
    return Adherence(sum(scores) / len(scores), tuple(g.id for g in guidelines), required - len(missing),
                     tuple(missing), tuple(violated))


def score_guidelines_batch(matched: Sequence[tuple[Guideline, ...]], responses: Sequence[Analysed],
                           unmatched_score: float) -> list[Adherence]:
    return [score_guidelines(g, r, unmatched_score) for g, r in zip(matched, responses)]
