"""Drift detectors against scipy and hand-worked examples."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special, stats
from scipy.stats import distributions

from clinical_rlhf.monitoring.drift import (CUSUM, PSI, IQROutliers, KSTest, _lindley_last, kolmogorov_two_sided_sf,
                                           smirnov_series_sf)

# ----------------------------------------------------------------------------- PSI


def test_psi_hand_worked_example():
    # Reference 0..99, 4 bins: quartile edges 24.75, 49.5, 74.25 -> 25% per bin.
    psi = PSI(np.arange(100.0), bins=4, epsilon=1e-4)
    np.testing.assert_allclose(psi.edges, [24.75, 49.5, 74.25])
    np.testing.assert_allclose(psi.reference_proportions, [0.25] * 4)
    # Current: half in bin 0, none in bin 1 (floored to 1e-4), a quarter in bins 2 and 3.
    current = np.r_[np.zeros(50), np.full(25, 60.0), np.full(25, 90.0)]
    expected = (0.5 - 0.25) * math.log(0.5 / 0.25) + (1e-4 - 0.25) * math.log(1e-4 / 0.25)
    assert psi.update(current) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(2.1285158932529735)


def test_psi_identical_distribution_is_zero_and_open_outer_bins_catch_everything():
    reference = np.arange(1000.0)
    psi = PSI(reference, bins=10)
    assert psi.update(reference) == pytest.approx(0.0, abs=1e-15)
    psi.reset()
    assert math.isnan(psi.psi) and psi.count == 0
    # Far outside the reference range: all in the two open outer bins, none lost.
    psi.update([-1e9, 1e9, 5e3])
    assert psi.count == 3
    np.testing.assert_allclose(psi.current_proportions[[0, -1]], [1 / 3, 2 / 3])


def test_psi_value_on_edge_goes_right_and_updates_accumulate():
    psi = PSI([0.0, 1.0, 2.0, 3.0, 4.0], bins=2)  # one edge at the median, 2.0
    np.testing.assert_allclose(psi.edges, [2.0])
    np.testing.assert_allclose(psi.reference_proportions, [0.4, 0.6])
    psi.update([2.0])
    psi.update([1.0, 1.5])
    np.testing.assert_allclose(psi.current_proportions, [2 / 3, 1 / 3])
    expected = (2 / 3 - 0.4) * math.log((2 / 3) / 0.4) + (1 / 3 - 0.6) * math.log((1 / 3) / 0.6)
    assert psi.psi == pytest.approx(expected)


def test_psi_ties_merge_bins_instead_of_leaving_them_empty():
    reference = np.r_[np.ones(95), np.zeros(5)]  # mostly-safe scores: 1.0
    psi = PSI(reference, bins=10)
    assert psi.edges.tolist() == [1.0]  # all nine deciles are 1.0: two bins, not ten
    np.testing.assert_allclose(psi.reference_proportions, [0.05, 0.95])
    assert psi.update(reference) == pytest.approx(0.0, abs=1e-15)
    psi.reset()
    psi.update(np.r_[np.ones(80), np.zeros(20)])  # four times as many unsafe answers
    assert psi.psi == pytest.approx((0.2 - 0.05) * math.log(4) + (0.8 - 0.95) * math.log(0.8 / 0.95))


def test_psi_sorted_fast_path_matches_naive_binning():
    rng = np.random.default_rng(1)
    psi = PSI(rng.normal(size=5000), bins=10)
    current = rng.normal(0.3, 1.2, size=20001)
    for sample in (current, np.sort(current)):
        psi.reset()
        psi.update(sample)
        naive = np.bincount(np.searchsorted(psi.edges, current, side="right"), minlength=10)
        np.testing.assert_array_equal(psi.current_proportions * current.size, naive)


# ----------------------------------------------------------------------------- KS


@pytest.mark.parametrize(
    ("n_reference", "n_current", "shift", "discrete"),
    [
        (200, 150, 0.0, False),         # scipy's exact method
        (3000, 4000, 0.1, True),        # exact with ties
        (10_000, 9_000, 0.05, False),   # largest exact size
        (10_001, 300, 0.2, False),      # asymptotic from here on
        (50_000, 40_000, 0.02, True),   # asymptotic with ties
        (200_000, 150_000, 0.01, False),
    ],
)
def test_ks_statistic_and_pvalue_identical_to_scipy(n_reference, n_current, shift, discrete):
    rng = np.random.default_rng(n_reference + n_current)
    reference = rng.normal(size=n_reference)
    current = rng.normal(shift, 1.0, size=n_current)
    if discrete:
        reference, current = np.round(reference * 4), np.round(current * 4)
    test = KSTest(reference, alpha=0.05)
    test.update(current[: n_current // 3])
    test.update(current[n_current // 3:])
    expected = stats.ks_2samp(reference, current)
    assert test.result.statistic == float(expected.statistic)
    effective_n = round(n_reference * n_current / (n_reference + n_current))
    if 10_000 < effective_n <= 1_000_000 and 2.2 <= effective_n * expected.statistic ** 2 < 370:  # Smirnov's series, resampled
        assert test.result.pvalue == pytest.approx(float(expected.pvalue), rel=1e-8)
    else:
        assert test.result.pvalue == float(expected.pvalue)
    assert test.result.drift == (expected.pvalue < 0.05)


@pytest.mark.parametrize("n", [10_001, 60_000, 500_000, 1_000_000])
@pytest.mark.parametrize("n_d_squared", [2.2, 3.0, 10.0, 50.0, 200.0, 360.0])
def test_smirnov_series_matches_scipys_full_sum(n, n_d_squared):
    d = math.sqrt(n_d_squared / n)
    expected = 2 * special.smirnov(n, d)
    assert smirnov_series_sf(n, d) == pytest.approx(expected, rel=1e-8)
    assert kolmogorov_two_sided_sf(d, n) == pytest.approx(float(distributions.kstwo.sf(d, n)), rel=1e-8)


def test_outside_smirnovs_band_the_p_value_is_scipys():
    # n D^2 below 2.2, above 370; n too small to need it; n where scipy's smirnov is asymptotic
    for n, d in ((500_000, 0.001), (500_000, 0.05), (5_000, 0.03), (2_000_000, 0.002)):
        assert kolmogorov_two_sided_sf(d, n) == float(distributions.kstwo.sf(d, n))


def test_ks_detects_shift_and_reset_clears():
    rng = np.random.default_rng(3)
    test = KSTest(rng.normal(size=500))
    assert test.result is None
    test.update(rng.normal(1.0, 1.0, size=500))
    assert test.result.drift and test.result.statistic > 0.3
    test.reset()
    assert test.result is None and test.count == 0
    test.update(rng.normal(size=500))
    assert not test.result.drift


# ----------------------------------------------------------------------------- CUSUM


def test_cusum_hand_worked_example():
    # mean 0, std 1, k = 0.5, h = 2
    cusum = CUSUM(slack=0.5, threshold=2.0, mean=0.0, std=1.0)
    trace = []
    for x in (0.0, 1.0, 2.0, 1.5, -3.0):
        cusum.update(x)
        trace.append((cusum.upper, cusum.lower, cusum.drift))
    # upper: 0, 0.5, 2.0, 3.0, 0 (3 - 3 - 0.5 < 0); lower: 0, 0, 0, 0, 2.5 (3 - 0.5)
    assert trace == [(0.0, 0.0, False), (0.5, 0.0, False), (2.0, 0.0, False),
                     (3.0, 0.0, True), (0.0, 2.5, True)]


def test_cusum_standardises_with_reference_std():
    cusum = CUSUM(slack=0.5, threshold=5.0, mean=10.0, std=2.0)
    cusum.update([14.0, 14.0])  # z = 2 each: upper = 1.5 then 3.0
    assert cusum.upper == pytest.approx(3.0) and cusum.statistic == pytest.approx(3.0)


def test_cusum_batch_update_equals_one_by_one():
    rng = np.random.default_rng(4)
    values = np.r_[rng.normal(size=300), rng.normal(0.8, 1.0, size=300)]
    batched, single = CUSUM(0.5, 5.0, mean=0.0, std=1.0), CUSUM(0.5, 5.0, mean=0.0, std=1.0)
    batched.update(values[:123])
    batched.update(values[123:])
    for value in values:
        single.update(value)
    assert batched.upper == pytest.approx(single.upper, abs=1e-9)
    assert batched.lower == pytest.approx(single.lower, abs=1e-9)


def test_lindley_closed_form_matches_loop():
    rng = np.random.default_rng(5)
    for start in (0.0, 3.0):
        increments = rng.normal(-0.2, 1.0, size=1000)
        s = start
        for y in increments:
            s = max(0.0, s + y)
        assert _lindley_last(start, increments) == pytest.approx(s, abs=1e-9)


def test_cusum_warm_up_estimates_reference_and_detects_shift():
    rng = np.random.default_rng(6)
    cusum = CUSUM(slack=0.5, threshold=5.0, warm_up=50)
    warm = rng.normal(3.0, 0.5, size=50)
    cusum.update(warm[:20])
    assert not cusum.ready and cusum.statistic == 0.0
    cusum.update(np.r_[warm[20:], [3.0]])
    assert cusum.ready and cusum.count == 1
    assert cusum.mean == pytest.approx(warm.mean()) and cusum.std == pytest.approx(warm.std(ddof=1))
    cusum.update(rng.normal(3.0, 0.5, size=100))
    assert not cusum.drift
    cusum.update(rng.normal(3.5, 0.5, size=40))  # +1 std: detected within a few dozen
    assert cusum.drift and cusum.upper > cusum.lower
    cusum.reset()
    assert not cusum.ready and cusum.statistic == 0.0


# ----------------------------------------------------------------------------- IQR


def test_iqr_fences_hand_worked():
    # 1..9: Q1 = 3, Q3 = 7, IQR = 4 -> fences -3 and 13 at factor 1.5
    iqr = IQROutliers(np.arange(1.0, 10.0), factor=1.5)
    assert (iqr.lower, iqr.upper) == (-3.0, 13.0)
    assert iqr.update([-3.0, 13.0, 0.0]) == 0.0  # on the fence is not outside
    assert iqr.update([-3.1, 13.5, 100.0, 5.0, 6.0]) == pytest.approx(3 / 8)
    iqr.reset()
    assert math.isnan(iqr.outlier_fraction)


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("build", "name"),
    [
        (lambda: PSI([1.0, 2.0], bins=1), "bins"),
        (lambda: PSI([1.0, 2.0], epsilon=0.0), "epsilon"),
        (lambda: PSI([1.0]), "reference"),
        (lambda: PSI([1.0, math.nan]), "reference"),
        (lambda: KSTest([1.0], alpha=1.5), "alpha"),
        (lambda: KSTest([]), "reference"),
        (lambda: CUSUM(slack=-1.0), "slack"),
        (lambda: CUSUM(threshold=0.0), "threshold"),
        (lambda: CUSUM(mean=0.0), "mean"),
        (lambda: CUSUM(mean=0.0, std=-1.0), "std"),
        (lambda: CUSUM(warm_up=1), "warm_up"),
        (lambda: IQROutliers([1.0, 2.0], factor=0.0), "factor"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(build, name):
    with pytest.raises(ValueError, match=rf"^{name} "):
        build()


def test_non_finite_observations_are_rejected():
    with pytest.raises(ValueError, match="^x "):
        PSI([0.0, 1.0]).update([math.inf])
    with pytest.raises(ValueError, match="^x "):
        CUSUM(mean=0.0, std=1.0).update([math.nan])
