"""The controllers' update rules against hand-worked steps, and their state round trips."""

import math

import pytest

from clinical_rlhf.config import PPOConfig
from clinical_rlhf.rl.controllers import (
    AdaptiveKLController,
    FixedKLController,
    LagrangeMultiplier,
    RunningMoments,
    UnsafeWindow,
    build_kl_controller,
)


def test_adaptive_kl_moves_beta_towards_target_with_clipped_error():
    controller = AdaptiveKLController(0.1, target=6.0, horizon=10_000)
    # KL 12 is 100% over target, clipped to +20%: beta * (1 + 0.2 * 100 / 10000)
    assert controller.update(12.0, n_steps=100) == pytest.approx(0.1 * 1.002)
    controller.reset()
    # KL 3 is 50% under, clipped to -20%
    assert controller.update(3.0, n_steps=100) == pytest.approx(0.1 * 0.998)
    controller.reset()
    # KL 6.6 is 10% over, not clipped: beta * (1 + 0.1 * 1000 / 10000)
    assert controller.update(6.6, n_steps=1000) == pytest.approx(0.1 * 1.01)


def test_fixed_kl_controller_and_builder():
    controller = FixedKLController(0.05)
    assert controller.update(100.0, 8) == 0.05
    controller.scale(2.0)
    assert controller.value == pytest.approx(0.1)
    assert isinstance(build_kl_controller(PPOConfig(adaptive_kl=True)), AdaptiveKLController)
    assert type(build_kl_controller(PPOConfig(adaptive_kl=False))) is FixedKLController
    with pytest.raises(ValueError, match="horizon"):
        AdaptiveKLController(0.1, 6.0, 0)


def test_lagrange_multiplier_rises_above_threshold_and_falls_below():
    multiplier = LagrangeMultiplier(1.0, learning_rate=0.1, max_multiplier=10.0, cost_threshold=0.1)
    # cost 0.6 > 0.1: log lambda = 0 + 0.1 * 1 * 0.5 = 0.05
    assert multiplier.update(0.6) == pytest.approx(math.exp(0.05))
    before = multiplier.value
    assert multiplier.update(0.0) < before  # cost under the threshold: lambda shrinks
    assert multiplier.value > 0.0


def test_lagrange_multiplier_cap_and_state_round_trip():
    multiplier = LagrangeMultiplier(1.0, learning_rate=1.0, max_multiplier=1.02, cost_threshold=0.0)
    assert multiplier.update(1.0) == pytest.approx(1.02)
    state = multiplier.state_dict()
    other = LagrangeMultiplier(1.0, 1.0, 1.02, 0.0)
    other.load_state_dict(state)
    assert other.value == pytest.approx(1.02)
    with pytest.raises(ValueError, match="init_multiplier"):
        LagrangeMultiplier(5.0, 0.1, 1.0, 0.0)


def test_running_moments_merge_batches():
    moments = RunningMoments()
    moments.update([1.0, 2.0, 3.0])
    moments.update([4.0, 5.0])
    assert moments.mean == pytest.approx(3.0)
    assert moments.std == pytest.approx(math.sqrt(2.0))  # population std of 1..5
    restored = RunningMoments()
    restored.load_state_dict(moments.state_dict())
    assert restored.std == pytest.approx(moments.std)


def test_unsafe_window_compares_a_full_window_with_the_best_plus_margin():
    window = UnsafeWindow(3)
    for ratio in (0.1, 0.4):
        window.update(ratio)
    assert not window.degraded(best=0.0, margin=0.15)  # not full yet
    window.update(0.4)  # mean (0.1 + 0.4 + 0.4) / 3 = 0.3 > 0.1 + 0.15
    assert window.degraded(best=0.1, margin=0.15)
    assert not window.degraded(best=0.2, margin=0.15)  # 0.3 is not above 0.35
    assert not window.degraded(best=None, margin=0.0)  # no checkpoint to compare with yet
    window.update(0.0)  # oldest value (0.1) leaves the window
    assert window.values == [0.4, 0.4, 0.0]
