"""Learned objective weights: which weighting of the four rule-based objectives do the experts'
preferences imply, next to the defaults 0.35 / 0.30 / 0.25 / 0.10?

For every decisive preference both answers are scored by the reward's own objectives, and the
chosen-minus-rejected differences d (safety, guidelines, uncertainty, coherence) are fitted by a
logistic regression without intercept (a Bradley-Terry model whose score is linear in the
components):

    P(chosen preferred) = sigmoid(beta . d)

maximised with Newton's method (IRLS) under a small L2 penalty, which keeps beta finite when the
preferences are perfectly separable (the solution then approaches the max-margin direction,
Rosset, Zhu & Hastie 2004). The reward needs non-negative weights summing to one, so:

- a negative coefficient (experts prefer *less* of that objective, given the others) is set to 0
  and the rest refitted without it, the most negative first, until none is left (an active set,
  as in Lawson & Hanson's NNLS): the constrained maximum, not a clipped unconstrained one;
- the remaining coefficients are divided by their sum. The sum itself is reported as the scale:
  how many logits of preference one unit of weighted reward is worth.

Intervals: percentile bootstrap over pairs (the whole constrained fit redone per resample); the
unconstrained coefficients also carry standard errors from the inverse Hessian. Agreement of a
weighting = share of pairs whose chosen answer gets the higher weighted sum (an exact tie counts
half). Pairs in which the guard vetoes an answer are left out (counted): the veto decides them,
whatever the weights. Needs numpy only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from clinical_rlhf.feedback.preferences import OBJECTIVES, PreferenceRecord, decisive
from clinical_rlhf.safety.verdict import SafetyVerdict

DEFAULT_L2 = 1e-2
"""L2 penalty on beta (in units of the summed log-likelihood): negligible next to ~2,000 pairs
unless the data are separable, where it is what keeps the fit finite."""


# ----------------------------------------------------------------------------- maths


def fit_logistic(x: np.ndarray, y: np.ndarray | None = None, *, l2: float = DEFAULT_L2,
                 max_iter: int = 100, tol: float = 1e-10) -> tuple[np.ndarray, np.ndarray]:
    """(beta, covariance) of the L2-penalised logistic regression without intercept.

    Minimises  sum_i [log(1 + exp(x_i . beta)) - y_i x_i . beta] + l2/2 |beta|^2  by Newton
    steps beta -= H^-1 g with g = X^T (p - y) + l2 beta, H = X^T diag(p (1 - p)) X + l2 I,
    p = sigmoid(X beta); `y` defaults to all ones (rows oriented chosen minus rejected). The
    covariance is H^-1 at the optimum (the usual asymptotic standard errors, squared).
    """
    x = np.asarray(x, dtype=float)
    y = np.ones(len(x)) if y is None else np.asarray(y, dtype=float)
    if x.ndim != 2 or len(y) != len(x):
        raise ValueError(f"x must be [n, k] and y [n], got {x.shape} and {y.shape}")
    if l2 < 0:
        raise ValueError(f"l2 must be >= 0, got {l2}")
    beta = np.zeros(x.shape[1])
    eye = np.eye(x.shape[1])
    for _ in range(max_iter):
        p = _sigmoid(x @ beta)
        gradient = x.T @ (p - y) + l2 * beta
        hessian = (x * (p * (1 - p))[:, None]).T @ x + l2 * eye
        step = np.linalg.lstsq(hessian, gradient, rcond=None)[0]
        beta -= step
        if np.max(np.abs(step)) < tol:
            break
    p = _sigmoid(x @ beta)
    hessian = (x * (p * (1 - p))[:, None]).T @ x + l2 * eye
    return beta, np.linalg.pinv(hessian)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # = 1 / (1 + exp(-z)), without overflow


def fit_nonnegative(x: np.ndarray, *, l2: float = DEFAULT_L2) -> np.ndarray:
    """Coefficients >= 0 maximising the penalised likelihood: refit without the most negative
    column until none is negative (columns dropped get 0)."""
    active = list(range(x.shape[1]))
    beta = np.zeros(x.shape[1])
    while active:
        fitted, _ = fit_logistic(x[:, active], l2=l2)
        if fitted.min() >= 0:
            beta[active] = fitted
            return beta
        active.pop(int(np.argmin(fitted)))
    return beta


def agreement(x: np.ndarray, weights: Sequence[float]) -> float:
    """Share of rows (chosen minus rejected) with a positive weighted sum; zero counts half."""
    if len(x) == 0:
        return float("nan")
    margin = np.asarray(x, dtype=float) @ np.asarray(weights, dtype=float)
    return float(np.mean((margin > 1e-12) + 0.5 * (np.abs(margin) <= 1e-12)))


def normalised(beta: np.ndarray) -> np.ndarray:
    total = beta.sum()
    return beta / total if total > 0 else np.full(len(beta), np.nan)


def undetermined_objectives(x: np.ndarray, min_share: float = 0.02, min_pairs: int = 10) -> tuple[str, ...]:
    """Objectives whose scores differ (by more than 1e-9) in fewer than max(`min_pairs`,
    `min_share` of the pairs): the preferences say next to nothing about their weight."""
    differing = (np.abs(np.asarray(x)) > 1e-9).sum(axis=0)
    floor = max(min_pairs, min_share * len(x))
    return tuple(name for name, count in zip(OBJECTIVES, differing) if count < floor)


def paste_weights(learned: Mapping[str, float], configured: Mapping[str, float],
                  keep: Sequence[str] = ()) -> dict[str, float]:
    """Weights for a config: objectives in `keep` (undetermined ones) keep their configured
    weight, the others share the rest in the learned proportions; rounded to 2 decimals."""
    kept = sum(configured[name] for name in keep)
    free = sum(learned[name] for name in OBJECTIVES if name not in keep)
    mixed = {name: configured[name] if name in keep else
             ((1.0 - kept) * learned[name] / free if free > 0 else (1.0 - kept) / (len(OBJECTIVES) - len(keep)))
             for name in OBJECTIVES}
    return rounded_weights(mixed, adjustable=[name for name in OBJECTIVES if name not in keep] or None)


def rounded_weights(weights: Mapping[str, float], digits: int = 2,
                    adjustable: Sequence[str] | None = None) -> dict[str, float]:
    """Weights rounded to `digits`, the rounding error put on the largest (of `adjustable`, by
    default of all), so they sum to 1 exactly as `reward.weights` requires."""
    rounded = {name: round(value, digits) for name, value in weights.items()}
    largest = max(adjustable or rounded, key=lambda name: rounded[name])
    rounded[largest] = round(rounded[largest] + 1.0 - sum(rounded.values()), digits)
    return rounded


# ----------------------------------------------------------------------------- the fit


@dataclass
class WeightFit:
    """Learned weights, their intervals, and how each weighting agrees with the preferences."""

    weights: dict[str, float]
    """Non-negative, summing to 1 (a dropped objective has 0)."""
    scale: float
    """Sum of the constrained coefficients: logits of preference per unit of weighted reward."""
    coefficients: dict[str, float]
    """The unconstrained coefficients (may be negative)."""
    standard_errors: dict[str, float]
    """Of the unconstrained coefficients (inverse Hessian)."""
    intervals: dict[str, tuple[float, float]]
    """Bootstrap percentile interval of each learned weight (`confidence` coverage)."""
    dropped: tuple[str, ...]
    """Objectives whose coefficient came out negative: weight 0."""
    undetermined: tuple[str, ...]
    """Objectives whose scores barely differ between the answers (`undetermined_objectives`)."""
    pairs_differing: dict[str, int]
    """Per objective, the pairs in which its scores differ."""
    pairs: int
    """Pairs fitted on."""
    confidence: float
    agreement: dict[str, dict[str, float]] = field(default_factory=dict)
    """`{"train": {"learned": ..., "default": ...}, "heldout": {...}}`."""

    def to_dict(self) -> dict[str, object]:
        return {"weights": self.weights, "scale": self.scale, "coefficients": self.coefficients,
                "standard_errors": self.standard_errors,
                "intervals": {name: list(bounds) for name, bounds in self.intervals.items()},
                "dropped": list(self.dropped), "undetermined": list(self.undetermined),
                "pairs_differing": self.pairs_differing, "pairs": self.pairs, "confidence": self.confidence,
                "agreement": self.agreement}


def fit_objective_weights(x: np.ndarray, *, l2: float = DEFAULT_L2, bootstrap: int = 200,
                          confidence: float = 0.95, seed: int = 0) -> WeightFit:
    """Learned weights from rows of component differences (chosen minus rejected, `OBJECTIVES` order)."""
    x = np.asarray(x, dtype=float)
    if x.ndim != 2 or x.shape[1] != len(OBJECTIVES) or len(x) == 0:
        raise ValueError(f"x must be [n>0, {len(OBJECTIVES)}] component differences, got shape {x.shape}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    raw, covariance = fit_logistic(x, l2=l2)
    beta = fit_nonnegative(x, l2=l2)
    weights = normalised(beta)
    rng = np.random.default_rng(seed)
    draws = np.array([normalised(fit_nonnegative(x[rng.integers(0, len(x), len(x))], l2=l2))
                      for _ in range(bootstrap)]) if bootstrap > 0 else np.empty((0, len(OBJECTIVES)))
    tail = (1.0 - confidence) / 2 * 100
    intervals = {name: ((float(np.nanpercentile(draws[:, k], tail)), float(np.nanpercentile(draws[:, k], 100 - tail)))
                        if len(draws) else (float("nan"), float("nan"))) for k, name in enumerate(OBJECTIVES)}
    return WeightFit(
        weights={name: float(w) for name, w in zip(OBJECTIVES, weights)}, scale=float(beta.sum()),
        coefficients={name: float(c) for name, c in zip(OBJECTIVES, raw)},
        standard_errors={name: float(np.sqrt(max(covariance[k, k], 0.0))) for k, name in enumerate(OBJECTIVES)},
        intervals=intervals, dropped=tuple(name for name, b in zip(OBJECTIVES, beta) if b == 0.0),
        undetermined=undetermined_objectives(x),
        pairs_differing={name: int(c) for name, c in zip(OBJECTIVES, (np.abs(x) > 1e-9).sum(axis=0))},
        pairs=len(x), confidence=confidence)


# ----------------------------------------------------------------------------- the data


@dataclass
class ComponentDifferences:
    """Rows of chosen-minus-rejected component scores, one per decisive, unvetoed pair."""

    x: np.ndarray
    """[n, 4] in `OBJECTIVES` order."""
    records: list[PreferenceRecord]
    """The pair of each row."""
    ties: int
    """Tie judgements left out (no winner)."""
    vetoed: int
    """Pairs left out because the guard vetoed one or both answers."""

    def label_agreement(self) -> dict[str, tuple[float, int]]:
        """Per objective: (share of pairs whose per-objective expert label names the side that
        objective's score favours, pairs with a decisive label for it)."""
        result = {}
        for k, name in enumerate(OBJECTIVES):
            hits = []
            for row, record in zip(self.x, self.records):
                label = record.objectives.get(name)
                if label in ("a", "b"):
                    towards_chosen = label == record.preferred
                    hits.append(1.0 if (row[k] > 0) == towards_chosen and row[k] != 0 else
                                0.5 if row[k] == 0 else 0.0)
            result[name] = (float(np.mean(hits)) if hits else float("nan"), len(hits))
        return result


def component_differences(records: Sequence[PreferenceRecord], reward, guard=None) -> ComponentDifferences:
    """Score both answers of every decisive pair with `reward` (a `MultiObjectiveReward`).

    `guard` (a `SafetyGuard`) checks the answers first, as in training; a pair with a vetoed answer
    is left out. Without a guard every answer is scored as allowed. The rule-based objectives read
    the prompt alone, so earlier turns of a conversation (`messages`) are not scored.
    """
    pairs = decisive(records)
    prompts = [r.prompt for r in pairs] * 2
    answers = [r.chosen for r in pairs] + [r.rejected for r in pairs]
    verdicts = guard.check_batch(prompts, answers) if guard is not None \
        else [SafetyVerdict(action="allow")] * len(answers)
    breakdowns = reward.score_batch(prompts, answers, verdicts)
    n = len(pairs)
    rows, kept = [], []
    for i, record in enumerate(pairs):
        chosen, rejected = breakdowns[i], breakdowns[n + i]
        if chosen.vetoed or rejected.vetoed:
            continue
        rows.append([chosen.components[name] - rejected.components[name] for name in OBJECTIVES])
        kept.append(record)
    x = np.array(rows, dtype=float).reshape(len(rows), len(OBJECTIVES))
    return ComponentDifferences(x=x, records=kept, ties=len(records) - n, vetoed=n - len(kept))
