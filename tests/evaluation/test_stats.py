"""Numerics of the evaluation statistics against scipy, hand-computed values and simulation."""

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from clinical_rlhf.evaluation.stats import (
    agreement_rate,
    bootstrap_mean,
    cohen_kappa,
    confusion,
    count_outcomes,
    mcnemar_exact,
    outcomes,
    paired_comparison,
    sign_test,
    wilcoxon_signed_rank,
)


def test_vectorised_bootstrap_is_the_naive_loop_resample_for_resample():
    values = np.random.default_rng(3).normal(size=17)
    rng = np.random.default_rng(11)
    means = [values[rng.integers(0, values.size, values.size)].mean() for _ in range(500)]
    low, high = np.quantile(means, [0.05, 0.95])
    estimate = bootstrap_mean(values, resamples=500, confidence=0.90, seed=11)
    assert estimate.low == pytest.approx(low) and estimate.high == pytest.approx(high)
    assert estimate.value == pytest.approx(values.mean()) and estimate.n == 17


def test_bootstrap_interval_agrees_with_scipy_percentile_bootstrap():
    values = np.random.default_rng(5).exponential(size=60)
    ours = bootstrap_mean(values, resamples=4000, confidence=0.95, seed=1)
    theirs = scipy_stats.bootstrap((values,), np.mean, n_resamples=4000, confidence_level=0.95,
                                   method="percentile", random_state=2).confidence_interval
    width = theirs.high - theirs.low
    assert abs(ours.low - theirs.low) < 0.1 * width and abs(ours.high - theirs.high) < 0.1 * width


def test_bootstrap_interval_covers_the_known_mean_about_as_often_as_promised():
    rng = np.random.default_rng(0)
    covered = 0
    for trial in range(300):
        sample = rng.normal(loc=2.0, scale=1.0, size=40)
        estimate = bootstrap_mean(sample, resamples=400, confidence=0.90, seed=trial)
        covered += estimate.low <= 2.0 <= estimate.high
    # percentile intervals under-cover slightly at n=40; 270 of 300 expected
    assert 0.82 <= covered / 300 <= 0.96


def test_bootstrap_edge_cases_and_argument_checks():
    empty = bootstrap_mean([], resamples=100)
    assert empty.n == 0 and math.isnan(empty.value) and math.isnan(empty.low)
    single = bootstrap_mean([0.25], resamples=100)
    assert single.value == single.low == single.high == 0.25
    constant = bootstrap_mean([1.0] * 10, resamples=100)
    assert constant.low == constant.high == 1.0
    with pytest.raises(ValueError, match="resamples"):
        bootstrap_mean([1.0], resamples=0)
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_mean([1.0], confidence=1.0)


def test_wilcoxon_is_scipys_and_drops_differences_within_epsilon():
    diff = np.array([0.3, -0.1, 0.25, 0.4, -0.05, 0.2, 0.15, 0.35, -0.2, 0.1, 0.45, 0.05])
    statistic, p_value = wilcoxon_signed_rank(diff)
    reference = scipy_stats.wilcoxon(diff)
    assert statistic == pytest.approx(reference.statistic) and p_value == pytest.approx(reference.pvalue)
    near_zero = np.append(diff, [1e-9, -1e-9])
    _, with_noise = wilcoxon_signed_rank(near_zero, tie_epsilon=1e-6)
    assert with_noise == pytest.approx(scipy_stats.wilcoxon(diff).pvalue)  # float noise counts as no difference
    assert wilcoxon_signed_rank([0.0, 0.0, 1e-9], tie_epsilon=1e-6) == (0.0, 1.0)


def test_sign_test_against_the_binomial_by_hand():
    # 9 wins, 1 loss: P(X <= 1) for Binomial(10, 1/2) = 11/1024, two-sided doubles it
    assert sign_test(9, 1) == pytest.approx(2 * 11 / 1024)
    assert sign_test(5, 5) == pytest.approx(1.0)
    assert sign_test(0, 0) == 1.0


def test_exact_mcnemar_against_the_binomial_by_hand():
    # 8 prompts only A got wrong, 1 only B: P(X <= 1) for Binomial(9, 1/2) = 10/512, doubled
    assert mcnemar_exact(8, 1) == pytest.approx(2 * 10 / 512)
    assert mcnemar_exact(1, 8) == mcnemar_exact(8, 1)
    assert mcnemar_exact(3, 3) == pytest.approx(1.0)
    assert mcnemar_exact(0, 0) == 1.0  # no discordant pair: nothing to test


def test_paired_bootstraps_resample_the_same_prompts():
    # the same seed draws the same indices for samples of one size: a paired design
    a = np.arange(30, dtype=float)
    first = bootstrap_mean(a, resamples=300, seed=4)
    second = bootstrap_mean(a * 2.0, resamples=300, seed=4)
    assert second.low == pytest.approx(2 * first.low) and second.high == pytest.approx(2 * first.high)


def test_outcomes_count_ties_within_epsilon_separately():
    diff = [0.2, -0.3, 0.0, 5e-7, -5e-7, 0.1]
    assert outcomes(diff, 1e-6).tolist() == [1, -1, 0, 0, 0, 1]
    assert count_outcomes(diff, 1e-6).to_dict() == {"wins": 2, "ties": 3, "losses": 1}
    assert count_outcomes(diff, 0.0).to_dict() == {"wins": 3, "ties": 1, "losses": 2}
    with pytest.raises(ValueError, match="tie_epsilon"):
        outcomes(diff, -1.0)


def test_paired_comparison_of_a_clearly_better_policy():
    rng = np.random.default_rng(2)
    b = rng.uniform(0.2, 0.6, size=50)
    a = b + 0.1 + rng.normal(scale=0.05, size=50)
    a[:5] = b[:5]  # five ties
    result = paired_comparison(a, b, tie_epsilon=1e-9, resamples=1000, seed=0)
    assert result.counts.ties == 5 and result.counts.n == 50
    assert result.win_rate.value == pytest.approx(result.counts.wins / 50)
    assert result.tie_rate == pytest.approx(0.1)
    assert result.decisive_win_rate == pytest.approx(result.counts.wins / (result.counts.wins + result.counts.losses))
    assert result.mean_difference.low > 0 and result.wilcoxon_p < 1e-6 and result.sign_p < 1e-6
    assert result.p_value == result.wilcoxon_p
    assert paired_comparison(a, b, tie_epsilon=1e-9, test="sign", resamples=100).p_value == result.sign_p
    same = paired_comparison(b, b, tie_epsilon=0.0, resamples=100)
    assert same.counts.ties == 50 and same.p_value == 1.0 and math.isnan(same.decisive_win_rate)
    with pytest.raises(ValueError, match="same length"):
        paired_comparison(a, b[:-1], tie_epsilon=0.0)
    with pytest.raises(ValueError, match="wilcoxon"):
        paired_comparison(a, b, tie_epsilon=0.0, test="t")


def test_cohen_kappa_on_the_textbook_two_by_two_example():
    # 50 items: both yes 20, both no 15, first yes/second no 5, first no/second yes 10
    # p_o = 0.7; p_e = 0.5 * 0.6 + 0.5 * 0.4 = 0.5; kappa = 0.2 / 0.5 = 0.4
    first = ["yes"] * 20 + ["no"] * 15 + ["yes"] * 5 + ["no"] * 10
    second = ["yes"] * 20 + ["no"] * 15 + ["no"] * 5 + ["yes"] * 10
    assert agreement_rate(first, second) == pytest.approx(0.7)
    assert cohen_kappa(first, second) == pytest.approx(0.4)


def test_cohen_kappa_with_three_labels_by_hand():
    expert = ["a", "tie", "b", "b"]
    system = ["a", "tie", "a", "b"]
    # p_o = 3/4; p_e = (1/4)(2/4) + (1/4)(1/4) + (2/4)(1/4) = 5/16; kappa = (12/16 - 5/16) / (11/16) = 7/11
    assert cohen_kappa(expert, system) == pytest.approx(7 / 11)
    assert confusion(expert, system, ("a", "b", "tie")) == [[1, 0, 0], [1, 1, 0], [0, 0, 1]]


def test_cohen_kappa_edge_cases():
    assert cohen_kappa(["a", "b", "a"], ["a", "b", "a"]) == pytest.approx(1.0)
    assert cohen_kappa(["a", "b"], ["b", "a"]) == pytest.approx(-1.0)
    assert math.isnan(cohen_kappa(["a", "a"], ["a", "a"]))  # chance agreement is certain: 0/0
    assert math.isnan(cohen_kappa([], []))
    # a label neither rater used changes nothing: two labels and three give the same kappa
    assert cohen_kappa(["a", "b", "b", "a"], ["a", "b", "a", "a"]) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="same items"):
        cohen_kappa(["a"], ["a", "b"])
