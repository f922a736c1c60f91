"""`RewardBreakdown`, the per-answer record of the reward, and its batch aggregation into
namespaced metrics (one dict per step; every component logged on its own)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from clinical_rlhf.reward.combine import COMPONENTS
from clinical_rlhf.safety.verdict import SafetyFlag


@dataclass(frozen=True, slots=True)
class RewardBreakdown:
    """One answer's reward: each component in [0, 1], its weight, and the scalar.

    A vetoed answer has every component 0.0, `total == reward.veto_penalty` and `cost == 1.0`;
    the other objectives never score it."""

    components: Mapping[str, float]
    """safety, guidelines, uncertainty, coherence (and `learned` when `reward.learned_model` is
    set), each in [0, 1]."""
    weights: Mapping[str, float]
    total: float
    vetoed: bool
    cost: float
    """Safety cost for the Lagrangian constraint: 1.0 when vetoed, else 0.0."""
    matched_guidelines: tuple[str, ...] = ()
    hallucination_flags: tuple[SafetyFlag, ...] = ()
    penalties: Mapping[str, float] = field(default_factory=dict)
    """Amounts subtracted after combination (`hallucination`), as actually charged."""
    missing_advice: tuple[str, ...] = ()
    """`guideline_id:advice_id` of required advice the answer lacks."""
    violated_advice: tuple[str, ...] = ()
    """`guideline_id:advice_id` of forbidden advice the answer gives."""

    @property
    def weighted(self) -> dict[str, float]:
        """Each component times its weight (what it contributed to a linear total)."""
        return {name: self.weights[name] * value for name, value in self.components.items()}

    def to_dict(self) -> dict[str, object]:
        return {
            "components": dict(self.components), "weights": dict(self.weights), "total": self.total,
            "vetoed": self.vetoed, "cost": self.cost, "matched_guidelines": list(self.matched_guidelines),
            "hallucination_flags": [flag.to_dict() for flag in self.hallucination_flags],
            "penalties": dict(self.penalties), "missing_advice": list(self.missing_advice),
            "violated_advice": list(self.violated_advice),
        }


def aggregate_breakdowns(breakdowns: Sequence[RewardBreakdown]) -> dict[str, float]:
    """Batch metrics: `reward/total/mean`, `reward/total/std`, `reward/<component>/mean` (`learned`
    too when it is on; over answers that were not vetoed, since a vetoed answer is never scored),
    `reward/vetoed_fraction`, `reward/hallucination_rate` (answers with at least one hallucination
    flag) and `reward/penalty/<name>/mean`. An empty batch gives an empty dict."""
    if not breakdowns:
        return {}
    n = len(breakdowns)
    totals = [b.total for b in breakdowns]
    mean = sum(totals) / n
    metrics = {
        "reward/total/mean": mean,
        "reward/total/std": (sum((t - mean) ** 2 for t in totals) / n) ** 0.5,
        "reward/vetoed_fraction": sum(b.vetoed for b in breakdowns) / n,
        "reward/hallucination_rate": sum(bool(b.hallucination_flags) for b in breakdowns) / n,
    }
    scored = [b for b in breakdowns if not b.vetoed]
    extra = sorted({name for b in breakdowns for name in b.components} - set(COMPONENTS))  # `learned`
    for name in (*COMPONENTS, *extra):
        metrics[f"reward/{name}/mean"] = (sum(b.components.get(name, 0.0) for b in scored) / len(scored)
                                          if scored else 0.0)
    for name in sorted({p for b in breakdowns for p in b.penalties}):
        metrics[f"reward/penalty/{name}/mean"] = sum(b.penalties.get(name, 0.0) for b in breakdowns) / n
    return metrics
