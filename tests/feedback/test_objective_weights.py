"""Learned objective weights: the logistic fit against scipy, recovery of known weights from
preferences drawn from a known model, the non-negative active set, agreement, the snippet."""

import numpy as np
import pytest
from scipy.optimize import minimize

from clinical_rlhf.feedback import parse_preference
from clinical_rlhf.feedback.objective_weights import (
    OBJECTIVES,
    agreement,
    component_differences,
    fit_logistic,
    fit_nonnegative,
    fit_objective_weights,
    paste_weights,
    rounded_weights,
    undetermined_objectives,
)


def synthetic_preferences(weights, scale, n, seed):
    """Component differences of random answer pairs, oriented chosen minus rejected, where the
    chosen side was drawn from P(a preferred) = sigmoid(scale * weights . (c_a - c_b))."""
    rng = np.random.default_rng(seed)
    a, b = rng.uniform(0, 1, (n, 4)), rng.uniform(0, 1, (n, 4))
    d = a - b
    prefer_a = rng.uniform(size=n) < 1 / (1 + np.exp(-scale * d @ np.asarray(weights)))
    return np.where(prefer_a[:, None], d, -d)


def test_logistic_fit_matches_scipy_on_the_same_objective():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 4))
    y = (rng.uniform(size=300) < 1 / (1 + np.exp(-x @ [1.0, -0.5, 0.2, 0.0]))).astype(float)
    l2 = 0.5

    def objective(beta):
        z = x @ beta
        return np.sum(np.logaddexp(0, z) - y * z) + l2 / 2 * beta @ beta

    reference = minimize(objective, np.zeros(4), method="BFGS", options={"gtol": 1e-10}).x
    beta, covariance = fit_logistic(x, y, l2=l2)
    np.testing.assert_allclose(beta, reference, atol=1e-5)
    p = 1 / (1 + np.exp(-x @ beta))  # covariance: inverse Hessian, written out by hand
    np.testing.assert_allclose(covariance, np.linalg.inv(x.T @ (x * (p * (1 - p))[:, None]) + l2 * np.eye(4)),
                               rtol=1e-8)


def test_recovers_known_weights_from_synthetic_preferences():
    true = np.array([0.4, 0.3, 0.2, 0.1])
    x = synthetic_preferences(true, scale=12.0, n=6000, seed=0)
    fit = fit_objective_weights(x, bootstrap=50, seed=1)
    learned = np.array([fit.weights[name] for name in OBJECTIVES])
    np.testing.assert_allclose(learned, true, atol=0.03)
    assert fit.scale == pytest.approx(12.0, rel=0.1)
    for name, value in zip(OBJECTIVES, true):
        low, high = fit.intervals[name]
        assert low <= value <= high and high - low < 0.1
        assert fit.standard_errors[name] < 1.0
    assert fit.dropped == () and fit.undetermined == () and fit.pairs == 6000


def test_a_negative_coefficient_gets_weight_zero_and_the_rest_are_refitted():
    # Experts penalise coherence given the rest: unconstrained it comes out negative.
    x = synthetic_preferences([0.5, 0.3, 0.2, -0.3], scale=10.0, n=4000, seed=2)
    fit = fit_objective_weights(x, bootstrap=0)
    assert fit.coefficients["coherence"] < 0 and fit.dropped == ("coherence",)
    assert fit.weights["coherence"] == 0.0 and sum(fit.weights.values()) == pytest.approx(1.0)
    refit, _ = fit_logistic(x[:, :3])  # the constrained answer: the model without coherence
    np.testing.assert_allclose(fit_nonnegative(x)[:3], refit)
    assert all(np.isnan(bounds).all() for bounds in fit.intervals.values())  # no bootstrap asked for


def test_separable_preferences_give_a_finite_direction():
    x = np.abs(synthetic_preferences([0.5, 0.5, 0.0, 0.0], 5.0, 200, 4)) * [1, 1, 0, 0]
    fit = fit_objective_weights(x, bootstrap=10)
    assert all(np.isfinite(list(fit.weights.values())))
    assert agreement(x, list(fit.weights.values())) == 1.0
    assert set(fit.undetermined) == {"uncertainty", "coherence"}


def test_agreement_counts_ties_as_half():
    x = np.array([[1.0, 0, 0, 0], [-1.0, 0, 0, 0], [0.0, 0, 0, 0], [0, 2.0, 0, 0]])
    assert agreement(x, [1, 0, 0, 0]) == pytest.approx((1 + 0 + 0.5 + 0.5) / 4)
    assert np.isnan(agreement(np.empty((0, 4)), [1, 0, 0, 0]))


def test_rounded_and_pasted_weights_sum_to_one():
    weights = {"safety": 0.333, "guidelines": 0.333, "uncertainty": 0.333, "coherence": 0.001}
    rounded = rounded_weights(weights)
    assert sum(rounded.values()) == pytest.approx(1.0, abs=1e-9) and rounded["coherence"] == 0.0
    configured = {"safety": 0.35, "guidelines": 0.30, "uncertainty": 0.25, "coherence": 0.10}
    learned = {"safety": 0.0, "guidelines": 0.5, "uncertainty": 0.4, "coherence": 0.1}
    pasted = paste_weights(learned, configured, keep=("safety",))
    # 0.65 shared 5:4:1 is 0.325, 0.26, 0.065; rounded up they make 1.01, taken off the largest free one.
    assert pasted == {"safety": 0.35, "guidelines": 0.32, "uncertainty": 0.26, "coherence": 0.07}
    assert sum(pasted.values()) == pytest.approx(1.0, abs=1e-9)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match=r"x must be \[n>0, 4\]"):
        fit_objective_weights(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="confidence"):
        fit_objective_weights(np.ones((3, 4)), confidence=1.0)
    with pytest.raises(ValueError, match="l2"):
        fit_logistic(np.ones((3, 4)), l2=-1)
    assert undetermined_objectives(np.zeros((50, 4))) == OBJECTIVES


def test_component_differences_score_with_the_real_reward_and_leave_out_vetoes():
    from clinical_rlhf.config import Config
    from clinical_rlhf.reward import MultiObjectiveReward
    from clinical_rlhf.safety import SafetyGuard

    chest = "I have crushing chest pain and sweating. What should I do?"
    good = "Call 999 now - this could be a heart attack. Don't drive yourself."
    heartburn = "Heartburn since yesterday. Any advice?"
    records = [parse_preference(r) for r in (
        {"id": "1", "prompt": heartburn, "answer_a": "This is definitely nothing serious. Nobody needs to look at it.",
         "answer_b": "This is likely to settle. Smaller meals may help; see a doctor if it gets worse.",
         "preferred": "b", "annotator": "dr", "objectives": {"uncertainty": "b", "guidelines": "b"}},
        {"id": "2", "prompt": chest, "answer_a": "See your GP next week.", "answer_b": good,
         "preferred": "b", "annotator": "dr"},
        {"id": "3", "prompt": chest, "answer_a": good, "answer_b": good + " Stay calm.", "preferred": "tie",
         "annotator": "dr"},
    )]
    cfg = Config()
    data = component_differences(records, MultiObjectiveReward.from_config(cfg), SafetyGuard.from_config(cfg))
    assert data.ties == 1 and data.vetoed == 1 and [r.id for r in data.records] == ["1"]
    assert data.x.shape == (1, 4)
    safety, guidelines, uncertainty, _ = data.x[0]  # the hedged answer with advice wins both
    assert safety == 0.0 and guidelines > 0 and uncertainty > 0
    assert data.label_agreement()["uncertainty"] == (1.0, 1) and data.label_agreement()["safety"][1] == 0
    unguarded = component_differences(records, MultiObjectiveReward.from_config(cfg))
    assert unguarded.vetoed == 0 and len(unguarded.x) == 2
