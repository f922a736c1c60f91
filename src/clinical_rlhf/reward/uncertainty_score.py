"""Uncertainty objective: is the answer's expressed confidence calibrated to the question?

What the question calls for (`ScoringContext.question_kind`):

- fact (a dose limit, a class, a definition): a direct answer. Blanket hedging and refusals
  ("I'm not a doctor, I can't answer") cost; a referral appended to a direct answer is fine.
- diagnostic (the asker's own symptoms): hedged, with the limits of a remote answer and a
  referral. A diagnosis asserted as certain, or false reassurance, costs most.
- urgent (emergency or same-day presentation): a referral to care, no overconfident
  reassurance; hedging is neither needed nor rewarded.
- general (how a condition is managed...): direct answer, moderate hedging fine, overclaiming costs.

When a model-based uncertainty `u` in [0, 1] is given (MC-dropout or sample disagreement, see
`uncertainty_estimation`), the wording score is blended with the agreement between `u` and the
uncertainty the wording expresses: ``(1 - a) * wording + a * (1 - |u - expressed|)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from clinical_rlhf.reward import lexicon
from clinical_rlhf.reward.context import Phrasebook, ScoringContext
from clinical_rlhf.reward.safety_score import escalation_level

SUBSTANCE_WORDS = 3
"""Distinct words an answer needs before its wording can earn the full uncertainty score."""


@dataclass(frozen=True, slots=True)
class Wording:
    """Counts of the confidence markers of one answer."""

    hedges: int
    qualifiers: int
    """Frequency/scope qualifiers ("usually", "most"): calibration without hedging."""
    limitations: int
    overconfident: int
    reassurance: bool
    disclaimer: bool
    referral: int
    """Escalation level: 0 none, 1 routine, 2 same-day, 3 emergency."""
    sentences: int
    words: int

    @property
    def hedge_excess(self) -> float:
        """Hedges beyond one per two sentences (at least one allowed): blanket hedging."""
        return max(0.0, self.hedges - max(1.0, 0.5 * self.sentences))

    @property
    def expressed(self) -> float:
        """Uncertainty the wording expresses, in [0, 1]."""
        raw = (self.hedges + 2 * self.limitations + (1 if self.referral else 0)) / 4
        return min(1.0, max(0.0, raw - 0.25 * self.overconfident))


def wording(ctx: ScoringContext, book: Phrasebook) -> Wording:
    response, text = ctx.response, ctx.response.normalized
    # Hedges, qualifiers and limitations mark uncertainty negated or not ("not likely" hedges
    # too); overclaiming and reassurance are checked for negation ("this is not definitely ...").
    return Wording(
        hedges=len(lexicon.HEDGE_RE.findall(text)),
        qualifiers=len(lexicon.QUALIFIER_RE.findall(text)),
        limitations=len(lexicon.LIMITATION_RE.findall(text)),
        overconfident=response.count(lexicon.OVERCONFIDENT_RE),
        reassurance=response.has(book.reassurance),
        disclaimer=lexicon.DISCLAIMER_RE.search(text) is not None,
        referral=escalation_level(ctx, book),
        sentences=max(1, len(response.sentences)),
        words=len(response.words),
    )


def _fact(w: Wording) -> float:
    score = 1.0 - min(0.6, 0.15 * w.hedge_excess) - (0.2 if w.limitations else 0.0)
    return score - (0.5 if w.disclaimer else 0.0)


def _diagnostic(w: Wording) -> float:
    score = 0.2 + (0.35 if w.referral else 0.0)
    score += (0.2 if w.hedges or w.limitations else 0.0) + (0.15 if w.limitations else 0.0)
    score += 0.1 if w.hedges or w.qualifiers else 0.0
    score -= min(0.8, 0.4 * w.overconfident) + (0.25 if w.reassurance else 0.0)
    score -= 0.2 if w.disclaimer and w.words < 25 else 0.0
    return score - min(0.3, 0.1 * max(0.0, w.hedge_excess - 1))


def _urgent(w: Wording) -> float:
    score = 0.25 + (0.0, 0.15, 0.4, 0.5)[w.referral] + (0.25 if w.limitations or w.hedges else 0.15)
    score -= min(0.8, 0.45 * w.overconfident) + (0.35 if w.reassurance else 0.0)
    return score - min(0.3, 0.1 * w.hedge_excess)


def _general(w: Wording) -> float:
    calibrated = w.hedges or w.limitations or w.qualifiers
    score = 0.75 + (0.15 if w.referral else 0.0) + (0.1 if calibrated else 0.0)
    score -= min(0.6, 0.3 * w.overconfident) + (0.3 if w.disclaimer and w.words < 25 else 0.0)
    return score - min(0.5, 0.15 * w.hedge_excess)


_BY_KIND = {"fact": _fact, "diagnostic": _diagnostic, "urgent": _urgent, "general": _general}


def score_uncertainty(ctx: ScoringContext, book: Phrasebook, model_uncertainty: float | None = None,
                      model_weight: float = 0.0) -> float:
    """Calibration of expressed uncertainty in [0, 1] for one answer."""
    w = wording(ctx, book)
    # An answer needs something to be calibrated about: fewer than three distinct words
    # ("the the the", an empty string) scale the score down.
    substance = min(1.0, len(set(ctx.response.words)) / SUBSTANCE_WORDS)
    score = substance * min(1.0, max(0.0, _BY_KIND[ctx.question_kind](w)))
    if model_uncertainty is not None and model_weight > 0.0:
        agreement = 1.0 - abs(min(1.0, max(0.0, model_uncertainty)) - w.expressed)
        score = (1.0 - model_weight) * score + model_weight * agreement
    return score


def score_uncertainty_batch(contexts: Sequence[ScoringContext], book: Phrasebook,
                            model_uncertainty: Sequence[float] | None = None,
                            model_weight: float = 0.0) -> list[float]:
    given = model_uncertainty if model_uncertainty is not None else [None] * len(contexts)
    return [score_uncertainty(c, book, u, model_weight) for c, u in zip(contexts, given)]
