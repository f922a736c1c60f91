"""DriftMonitor: the reference window, then per-iteration tests of rewards and safety scores."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from clinical_rlhf.config import DriftConfig
from clinical_rlhf.monitoring.drift_monitor import DriftMonitor

KEYS = ("psi", "ks_statistic", "ks_pvalue", "ks_drift", "cusum", "cusum_drift", "outlier_fraction", "samples")


def test_reference_window_then_metrics_for_both_signals():
    rng = np.random.default_rng(0)
    monitor = DriftMonitor(DriftConfig(reference_iterations=3, min_samples=64))
    reference_rewards = []
    for step in range(3):
        rewards = rng.normal(0.5, 0.1, size=64)
        reference_rewards.append(rewards)
        assert monitor.update(step, rewards, rng.uniform(0.8, 1.0, size=64)) == {}
        assert monitor.ready == (step == 2)
    assert monitor.reference_steps == [0, 1, 2]
    current = rng.normal(0.5, 0.1, size=64)
    metrics = monitor.update(3, current, rng.uniform(0.8, 1.0, size=64))
    assert set(metrics) == {f"drift/{signal}/{key}" for signal in ("reward", "safety") for key in KEYS}
    # The KS result is scipy's, against the pooled reference window.
    expected = stats.ks_2samp(np.concatenate(reference_rewards), current)
    assert metrics["drift/reward/ks_pvalue"] == float(expected.pvalue)
    assert metrics["drift/reward/psi"] < 0.25 and metrics["drift/reward/ks_drift"] == 0.0


def test_shifted_rewards_are_flagged_by_every_detector():
    rng = np.random.default_rng(1)
    monitor = DriftMonitor(DriftConfig(reference="fixed", reference_iterations=2, min_samples=64))
    for step in range(2):
        monitor.update(step, rng.normal(0.5, 0.1, size=64), np.ones(64))
    metrics = {}
    for step in range(2, 5):  # rewards collapse by 3 reference standard deviations
        metrics = monitor.update(step, rng.normal(0.2, 0.1, size=64), np.ones(64))
    assert metrics["drift/reward/psi"] > 0.25
    assert metrics["drift/reward/ks_drift"] == 1.0 and metrics["drift/reward/ks_pvalue"] < 1e-10
    assert metrics["drift/reward/cusum_drift"] == 1.0 and metrics["drift/reward/cusum"] > 100
    assert metrics["drift/reward/outlier_fraction"] > 0.2
    # Safety scores stayed at 1.0: no drift there.
    assert metrics["drift/safety/psi"] == pytest.approx(0.0, abs=1e-12)
    assert metrics["drift/safety/cusum"] == 0.0 and metrics["drift/safety/outlier_fraction"] == 0.0


@pytest.mark.parametrize("seed", range(4))
def test_rolling_reference_flags_a_sudden_change_not_steady_progress(seed):
    rng = np.random.default_rng(seed)
    rolling, fixed = DriftMonitor(DriftConfig()), DriftMonitor(DriftConfig(reference="fixed"))
    # the demo's shape: batches of 32, a reward that improves steadily from 0.3 to 0.7 in 40 iterations
    firings = {"rolling": 0, "fixed": 0}
    for step, mean in enumerate(np.linspace(0.3, 0.7, 40)):
        rewards = rng.normal(mean, 0.3, size=32)
        for name, monitor in (("rolling", rolling), ("fixed", fixed)):
            firings[name] += monitor.update(step, rewards, np.ones(32)).get("drift/reward/psi", 0.0) > 0.25
    # the frozen reference calls most of the run drift; the rolling one only PSI's sampling noise
    # at 200 values (a few chance crossings, merged into one report row with a count)
    assert firings["fixed"] >= 18 and firings["rolling"] <= firings["fixed"] // 3
    # a collapse is drift: flagged when it happens, and the new level then becomes the reference
    collapsed = [rolling.update(40 + step, rng.normal(-0.5, 0.3, size=32), np.ones(32)) for step in range(16)]
    assert collapsed[3]["drift/reward/psi"] > 1.0 and collapsed[3]["drift/reward/ks_drift"] == 1.0
    assert collapsed[-1]["drift/reward/psi"] < 0.25


def test_safety_drop_from_constant_reference_is_detected():
    monitor = DriftMonitor(DriftConfig(reference_iterations=1, min_samples=2))
    monitor.update(0, np.zeros(10), np.ones(32))
    metrics = monitor.update(1, np.zeros(10), np.r_[np.ones(24), np.zeros(8)])
    assert metrics["drift/safety/outlier_fraction"] == pytest.approx(0.25)
    assert metrics["drift/safety/cusum_drift"] == 1.0  # std floored at 1e-3, not a division by 0
    assert metrics["drift/safety/psi"] > 0.25


def test_non_finite_values_are_dropped_and_reset_forgets_reference():
    monitor = DriftMonitor(DriftConfig(reference_iterations=1, min_samples=2))
    monitor.update(0, [0.1, 0.2, np.nan, 0.3], [1.0, 1.0, 0.9])
    metrics = monitor.update(1, [np.inf, 0.2, 0.25], [1.0, 1.0])
    assert metrics["drift/reward/outlier_fraction"] == 0.0
    monitor.reset()
    assert not monitor.ready and monitor.update(2, [0.1, 0.2], [1.0, 1.0]) == {}


def test_small_batches_extend_the_reference_and_pool_the_tested_sample():
    rng = np.random.default_rng(2)
    monitor = DriftMonitor(DriftConfig(reference_iterations=2, min_samples=40))
    batches = [rng.normal(size=16) for _ in range(8)]
    assert [monitor.update(step, batch, batch) for step, batch in enumerate(batches[:3])] == [{}, {}, {}]
    assert monitor.ready and monitor.reference_steps == [0, 1, 2]  # 2 iterations held only 32
    results = [monitor.update(step, batch, batch) for step, batch in enumerate(batches[3:], 3)]
    assert [sorted(r) for r in results[:2]] == [["drift/reward/cusum", "drift/reward/cusum_drift",
                                                 "drift/safety/cusum", "drift/safety/cusum_drift"]] * 2
    # From then on the latest iterations are pooled until they hold >= 40 values.
    assert [r["drift/reward/samples"] for r in results[2:]] == [48, 48, 48]
    pooled = np.concatenate(batches[5:8])
    expected = stats.ks_2samp(np.concatenate(batches[:3]), pooled)
    assert monitor.result["drift/reward/ks_pvalue"] == float(expected.pvalue)


def test_psi_noise_floor_without_drift_stays_below_alert_at_default_min_samples():
    # Same distribution throughout: with 200 values each side PSI stays below 0.25.
    rng = np.random.default_rng(3)
    monitor = DriftMonitor(DriftConfig())
    psis = []
    for step in range(60):
        metrics = monitor.update(step, rng.normal(size=50), rng.uniform(size=50))
        if "drift/reward/psi" in metrics:
            psis.append(metrics["drift/reward/psi"])
    assert len(psis) == 53 and max(psis) < 0.25 and np.mean(psis) < 0.15


def test_config_type_is_checked():
    with pytest.raises(ValueError, match="^cfg "):
        DriftMonitor({"reference_iterations": 3})
