"""The multi-objective reward: safety, guideline adherence, uncertainty and coherence scorers,
their weighted (or non-linear) combination, hallucination checks, and the torch-based
uncertainty estimator (MC-dropout or sampling; imported lazily, the rest needs no torch).

    from clinical_rlhf.reward import MultiObjectiveReward, aggregate_breakdowns
    reward = MultiObjectiveReward(cfg.reward)            # or MultiObjectiveReward.from_config(cfg)
    breakdowns = reward.score_batch(prompts, responses, verdicts)
    metrics = aggregate_breakdowns(breakdowns)
"""

from __future__ import annotations

from typing import Any

from clinical_rlhf.reward.breakdown import RewardBreakdown, aggregate_breakdowns
from clinical_rlhf.reward.combine import COMPONENTS, combine, validate_weights
from clinical_rlhf.reward.consistency import group_samples
from clinical_rlhf.reward.multi_objective import MultiObjectiveReward

__all__ = [
    "COMPONENTS",
    "MultiObjectiveReward",
    "RewardBreakdown",
    "aggregate_breakdowns",
    "combine",
    "estimate_uncertainty",
    "group_samples",
    "validate_weights",
]


def __getattr__(name: str) -> Any:
    # The estimator imports torch; load it only when asked for.
    if name == "estimate_uncertainty":
        from clinical_rlhf.reward.uncertainty_estimation import estimate_uncertainty

        return estimate_uncertainty
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
