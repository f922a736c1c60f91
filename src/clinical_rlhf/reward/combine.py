"""Weights and the combination of component scores into one scalar.

Three combinations (`reward.combination`):

- linear:       R = sum_i w_i c_i
- geometric:    R = prod_i max(c_i, EPS) ** w_i       (weights sum to 1: a weighted geometric mean;
                one component near 0 pulls the total towards 0, so coherence cannot buy back safety)
- safety_gate:  R = min(linear, c_safety) when c_safety < gate, else linear

The hallucination penalty is applied afterwards: R - min(R, penalty * n_flags) (never below 0).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from clinical_rlhf.errors import ConfigError

COMPONENTS: tuple[str, ...] = ("safety", "guidelines", "uncertainty", "coherence")
GEOMETRIC_EPS = 1e-3
"""Floor of a component inside the geometric mean, so one zero gives a small total, not log(0)."""


def validate_weights(weights: Mapping[str, float]) -> dict[str, float]:
    """Weights of exactly the four components, each finite and non-negative, summing to 1.

    Checked when the reward is built (the config schema checks the same for YAML), so a weight
    mapping built in code cannot skip the rule."""
    names = set(weights)
    if names != set(COMPONENTS):
        missing, extra = sorted(set(COMPONENTS) - names), sorted(names - set(COMPONENTS))
        raise ConfigError(f"reward.weights must name exactly {', '.join(COMPONENTS)} "
                          f"(missing: {missing or 'none'}, unknown: {extra or 'none'})")
    for name, value in weights.items():
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ConfigError(f"reward.weights.{name} must be a finite number >= 0 (got {value!r})")
    total = sum(weights.values())
    if abs(total - 1.0) > 1e-6:
        raise ConfigError(f"reward.weights must sum to 1.0, they sum to {total:.4f}; rescale them")
    return {name: float(weights[name]) for name in COMPONENTS}


def linear(components: Mapping[str, float], weights: Mapping[str, float]) -> float:
    return sum(weights[name] * components[name] for name in COMPONENTS)


def geometric(components: Mapping[str, float], weights: Mapping[str, float]) -> float:
    log_total = sum(weights[name] * math.log(max(components[name], GEOMETRIC_EPS))
                    for name in COMPONENTS if weights[name] > 0)
    return math.exp(log_total)


def safety_gated(components: Mapping[str, float], weights: Mapping[str, float], gate: float) -> float:
    total = linear(components, weights)
    return min(total, components["safety"]) if components["safety"] < gate else total


def combine(components: Mapping[str, float], weights: Mapping[str, float], method: str,
            gate: float = 0.5) -> float:
    """The scalar of one non-vetoed answer, before penalties."""
    if method == "linear":
        return linear(components, weights)
    if method == "geometric":
        return geometric(components, weights)
    if method == "safety_gate":
        return safety_gated(components, weights, gate)
    raise ConfigError(f"reward.combination must be linear, geometric or safety_gate (got {method!r})")


def apply_penalty(total: float, penalty: float) -> tuple[float, float]:
    """(total after the penalty, penalty actually charged): the charge is capped at the total."""
    charged = min(max(total, 0.0), max(penalty, 0.0))
    return total - charged, charged
