"""Weights validation and the three combinations, against hand-computed values."""

import math
import re

import pytest

from clinical_rlhf.config import config_from_mapping
from clinical_rlhf.errors import ConfigError
from clinical_rlhf.reward.combine import apply_penalty, combine, geometric, linear, validate_weights

WEIGHTS = {"safety": 0.35, "guidelines": 0.30, "uncertainty": 0.25, "coherence": 0.10}
SCORES = {"safety": 0.2, "guidelines": 0.5, "uncertainty": 1.0, "coherence": 1.0}


def test_validate_weights_accepts_defaults_in_component_order():
    assert list(validate_weights(WEIGHTS)) == ["safety", "guidelines", "uncertainty", "coherence"]


@pytest.mark.parametrize("weights, fragment", [
    ({"safety": 0.65, "guidelines": 0.35, "uncertainty": 0.0}, "missing: ['coherence']"),
    ({**WEIGHTS, "style": 0.0}, "unknown: ['style']"),
    ({**WEIGHTS, "safety": -0.05, "guidelines": 0.70}, "reward.weights.safety"),
    ({**WEIGHTS, "coherence": float("nan")}, "reward.weights.coherence"),
    ({**WEIGHTS, "coherence": 0.2}, "sum to 1.0"),
])
def test_validate_weights_rejects_count_sign_and_sum(weights, fragment):
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        validate_weights(weights)


def test_config_rejects_weights_that_do_not_sum_to_one():
    with pytest.raises(ConfigError, match="sum to 1.0"):
        config_from_mapping({"reward": {"weights": {**WEIGHTS, "safety": 0.5}}})
    with pytest.raises(ConfigError, match="reward.weights.safety"):
        config_from_mapping({"reward": {"weights": {**WEIGHTS, "safety": -0.1, "guidelines": 0.75}}})


def test_linear_hand_value():
    # 0.35*0.2 + 0.30*0.5 + 0.25*1 + 0.10*1 = 0.07 + 0.15 + 0.25 + 0.10
    assert linear(SCORES, WEIGHTS) == pytest.approx(0.57)


def test_geometric_hand_value_and_low_safety_pulls_harder():
    expected = math.exp(0.35 * math.log(0.2) + 0.30 * math.log(0.5))
    assert geometric(SCORES, WEIGHTS) == pytest.approx(expected)
    assert geometric(SCORES, WEIGHTS) < linear(SCORES, WEIGHTS)
    zero_safety = {**SCORES, "safety": 0.0}
    # floored at 1e-3: 1e-3 ** 0.35 * 0.5 ** 0.30
    assert geometric(zero_safety, WEIGHTS) == pytest.approx(1e-3 ** 0.35 * 0.5 ** 0.30)


def test_safety_gate_caps_the_total_only_below_the_gate():
    assert combine(SCORES, WEIGHTS, "safety_gate", gate=0.5) == pytest.approx(0.2)
    assert combine(SCORES, WEIGHTS, "safety_gate", gate=0.1) == pytest.approx(0.57)
    perfect = {name: 1.0 for name in WEIGHTS}
    assert combine(perfect, WEIGHTS, "safety_gate", gate=0.5) == pytest.approx(1.0)


def test_coherence_cannot_buy_back_safety_under_nonlinear_combinations():
    unsafe_fluent = {"safety": 0.1, "guidelines": 0.6, "uncertainty": 0.6, "coherence": 1.0}
    safe_clumsy = {"safety": 0.9, "guidelines": 0.6, "uncertainty": 0.6, "coherence": 0.0}
    for method in ("geometric", "safety_gate"):
        assert combine(safe_clumsy, WEIGHTS, method) > combine(unsafe_fluent, WEIGHTS, method)


def test_unknown_combination_is_a_config_error():
    with pytest.raises(ConfigError, match="reward.combination"):
        combine(SCORES, WEIGHTS, "harmonic")


def test_apply_penalty_is_capped_at_the_total():
    assert apply_penalty(0.6, 0.4) == pytest.approx((0.2, 0.4))
    assert apply_penalty(0.3, 0.4) == pytest.approx((0.0, 0.3))
    assert apply_penalty(0.5, 0.0) == (0.5, 0.0)
