"""Triage agreement: the care an answer advises against the care its question needs, the part of the
guidelines objective that the question's urgency decides (`reward.triage`, docs/reward.md).

With need n and advised level a (ranks: self-care 0, routine 1, urgent 2, emergency 3; an answer
advising no care counts as self-care)::

    agreement = 1                                              a == n
              = 1 - over_triage_penalty * (a - n)              a >  n   (mild)
                - missing_safety_net_penalty * [a < emergency, no safety net]     (a >= n)
              = max(0, 1 - under_triage_penalty * (n - a))     a <  n   (strong)
                + safety_net_credit * [the answer says when to seek more urgent care]

Safety-netting (saying when to seek more urgent care) is part of NICE's advice for self-care and
routine care (NG143 fever in under 5s, NG84 sore throat, NG120 cough), so an answer at the right
level without it scores a little less; the penalty stays below one level of over-triage.

    guidelines = (1 - weight) * adherence + weight * agreement      when the need is known
               = adherence + weight * missing_safety_net_penalty * [says when to seek more care]
                                                                    otherwise (round three)

The config checks that one level of under-triage with a safety net stays below three levels of
over-triage, so correct > over-triage > under-triage whatever the distance.

The need is the guard's triage on the verdict when it has one read from the question (a reason other
than the `default` guess); else the reward's own reading of the question (its matched guidelines and
red flags, `ScoringContext.urgency`); unknown for a question that presents nothing (a fact question),
which is then scored on its guideline statements alone. The advice is the guard's reading on the
verdict, or the same reader run on the answer (`safety.advice.read_advice`): one reading of advice,
shared with the under-triage veto.
"""

from __future__ import annotations

from clinical_rlhf.config import TriageRewardConfig
from clinical_rlhf.reward.context import ScoringContext
from clinical_rlhf.safety.advice import LEVEL_OF_RANK
from clinical_rlhf.safety.triage import URGENCY_RANK, AdvisedCare, Urgency

NO_CARE_RANK = URGENCY_RANK["self_care"]
"""An answer advising no care at all leaves the person to look after themselves: self-care."""
EMERGENCY_RANK = URGENCY_RANK["emergency"]
"""Emergency care now leaves nothing more urgent to net."""


def question_need(ctx: ScoringContext) -> Urgency | None:
    """The care the question needs: the guard's triage when read from the question, else the
    reward's own reading when it recognised a presentation; None when nothing is known."""
    triage = ctx.verdict.triage
    if triage is not None and any(reason.kind != "default" for reason in triage.reasons):
        return triage.urgency
    if ctx.guidelines or ctx.prompt_red_flag:
        return LEVEL_OF_RANK[ctx.urgency]
    return None


def triage_agreement(need: Urgency, advised: AdvisedCare, cfg: TriageRewardConfig) -> float:
    """Agreement in [0, 1] of the advised care with the need (module docstring)."""
    needed = URGENCY_RANK[need]
    given = URGENCY_RANK[advised.urgency] if advised.urgency is not None else NO_CARE_RANK
    if given >= needed:
        unnetted = given < EMERGENCY_RANK and not advised.safety_net
        return 1.0 - cfg.over_triage_penalty * (given - needed) - cfg.missing_safety_net_penalty * unnetted
    score = max(0.0, 1.0 - cfg.under_triage_penalty * (needed - given))
    return score + (cfg.safety_net_credit if advised.safety_net else 0.0)


def with_triage(adherence: float, need: Urgency | None, advised: AdvisedCare, cfg: TriageRewardConfig) -> float:
    """The guidelines objective: adherence blended with triage agreement when the need is known;
    when it is not, adherence plus the agreement's safety-net share (`weight ×
    missing_safety_net_penalty`) for an answer that says when to seek more care: safety-netting is
    advised whatever the urgency (NICE NG143, NG84, NG120). A credit, not a charge on the answers
    without one: with the need unknown the level is not judged, and a charge that emergency advice
    escapes (it has nothing more urgent to net) would teach over-triage of whatever is not recognised."""
    if cfg.weight == 0.0:
        return adherence
    if need is None:
        return min(1.0, adherence + cfg.weight * cfg.missing_safety_net_penalty * advised.safety_net)
    return (1.0 - cfg.weight) * adherence + cfg.weight * triage_agreement(need, advised, cfg)
