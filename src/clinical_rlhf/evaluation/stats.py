"""The statistics of an evaluation: bootstrap confidence intervals, paired comparisons and
Cohen's kappa. Thin wrappers that give the libraries made for each test (scipy.stats'
`bootstrap`, `binomtest` and `wilcoxon`, statsmodels' `mcnemar`, scikit-learn's
`cohen_kappa_score` and `confusion_matrix`) the edge cases an evaluation meets: empty samples,
one prompt, no decisive pair. Nothing here knows about models.

The unit of every resampling is one prompt (a cluster bootstrap when a prompt has several
sampled answers: its answers are averaged first, so they are never split across resamples).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import warnings

import numpy as np
from scipy import stats as scipy_stats
from sklearn.metrics import cohen_kappa_score, confusion_matrix
from statsmodels.stats.contingency_tables import mcnemar


@dataclass(frozen=True, slots=True)
class Estimate:
    """A point estimate with its percentile-bootstrap interval at `confidence`."""

    value: float
    low: float
    high: float
    confidence: float
    n: int

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def _rng(seed: int | np.random.Generator) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _check(resamples: int, confidence: float) -> None:
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def bootstrap_mean(values: Sequence[float] | np.ndarray, *, resamples: int = 2000, confidence: float = 0.95,
                   seed: int | np.random.Generator = 0) -> Estimate:
    """Mean of `values` with a percentile bootstrap interval (Efron & Tibshirani 1993, ch. 13), by
    `scipy.stats.bootstrap(method="percentile")`. What it computes, resample for resample:

        means = [values[rng.integers(0, n, n)].mean() for _ in range(resamples)]
        low, high = np.quantile(means, [(1 - confidence) / 2, (1 + confidence) / 2])

    The same seed draws the same prompt indices for any sample of the same size, so two calls
    with one seed resample the same prompts (a paired design). An empty sample gives NaN
    everywhere; a single value (which scipy refuses) a zero-width interval.
    """
    _check(resamples, confidence)
    data = np.asarray(values, dtype=float)
    n = data.size
    if n == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), confidence, 0)
    if n == 1:
        return Estimate(float(data[0]), float(data[0]), float(data[0]), confidence, 1)
    with warnings.catch_warnings():  # a constant sample is a zero-width interval, not a problem
        warnings.simplefilter("ignore", scipy_stats.DegenerateDataWarning)
        interval = scipy_stats.bootstrap((data,), np.mean, n_resamples=resamples, confidence_level=confidence,
                                         method="percentile", random_state=_rng(seed)).confidence_interval
    return Estimate(float(data.mean()), float(interval.low), float(interval.high), confidence, n)


@dataclass(frozen=True, slots=True)
class WinTieLoss:
    """Paired outcome counts of A against B, prompt by prompt."""

    wins: int
    ties: int
    losses: int

    @property
    def n(self) -> int:
        return self.wins + self.ties + self.losses

    def to_dict(self) -> dict[str, int]:
        return {"wins": self.wins, "ties": self.ties, "losses": self.losses}


def outcomes(differences: Sequence[float] | np.ndarray, tie_epsilon: float) -> np.ndarray:
    """Per pair: +1 when A beats B by more than `tie_epsilon`, -1 when B beats A, 0 a tie."""
    if tie_epsilon < 0:
        raise ValueError(f"tie_epsilon must be >= 0, got {tie_epsilon}")
    diff = np.asarray(differences, dtype=float)
    return np.where(diff > tie_epsilon, 1, np.where(diff < -tie_epsilon, -1, 0))


def count_outcomes(differences: Sequence[float] | np.ndarray, tie_epsilon: float) -> WinTieLoss:
    result = outcomes(differences, tie_epsilon)
    return WinTieLoss(int((result > 0).sum()), int((result == 0).sum()), int((result < 0).sum()))


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Exact McNemar p-value (McNemar 1947) of paired binary outcomes from the discordant pairs:
    `a_only` items where only A had the event, `b_only` where only B had it (concordant pairs
    carry no information, so they are not asked for), by `statsmodels`' `mcnemar(exact=True)`.
    1.0 when no pair is discordant."""
    if a_only + b_only == 0:
        return 1.0
    return float(mcnemar([[0, a_only], [b_only, 0]], exact=True).pvalue)


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact sign test of wins against losses (ties dropped, as in Dixon & Mood 1946):
    the binomial probability of a split at least this uneven when each is equally likely. 1.0
    when there is nothing to test."""
    if wins + losses == 0:
        return 1.0
    return float(scipy_stats.binomtest(wins, wins + losses, 0.5).pvalue)


def wilcoxon_signed_rank(differences: Sequence[float] | np.ndarray, tie_epsilon: float = 0.0) -> tuple[float, float]:
    """(statistic, two-sided p-value) of the Wilcoxon signed-rank test on paired differences,
    by `scipy.stats.wilcoxon`. Differences within `tie_epsilon` of zero are ties and are dropped
    before the test (Wilcoxon's own treatment of zeros); dropping them here rather than passing
    zeros lets scipy use the exact null distribution, which it gives up when zeros are present.
    With no difference left the test has nothing to reject: (0.0, 1.0)."""
    diff = np.asarray(differences, dtype=float)
    diff = diff[np.abs(diff) > tie_epsilon]
    if diff.size == 0:
        return 0.0, 1.0
    result = scipy_stats.wilcoxon(diff, alternative="two-sided")
    return float(result.statistic), float(result.pvalue)


@dataclass(frozen=True, slots=True)
class PairedComparison:
    """A against B on the same prompts: the mean difference, win/tie/loss and both tests."""

    mean_difference: Estimate
    win_rate: Estimate
    """Share of prompts A wins (ties count as not won), with a bootstrap interval."""
    tie_rate: float
    loss_rate: float
    counts: WinTieLoss
    decisive_win_rate: float
    """wins / (wins + losses): the win rate among prompts that were not ties (NaN if none)."""
    wilcoxon_statistic: float
    wilcoxon_p: float
    sign_p: float
    test: str
    """Which test `p_value` reports: `wilcoxon` or `sign`."""

    @property
    def p_value(self) -> float:
        return self.wilcoxon_p if self.test == "wilcoxon" else self.sign_p

    def to_dict(self) -> dict[str, object]:
        return {
            "mean_difference": self.mean_difference.to_dict(), "win_rate": self.win_rate.to_dict(),
            "tie_rate": self.tie_rate, "loss_rate": self.loss_rate, **self.counts.to_dict(),
            "decisive_win_rate": self.decisive_win_rate, "test": self.test, "p_value": self.p_value,
            "wilcoxon": {"statistic": self.wilcoxon_statistic, "p_value": self.wilcoxon_p},
            "sign_test": {"p_value": self.sign_p},
        }


def paired_comparison(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, *, tie_epsilon: float,
                      test: str = "wilcoxon", resamples: int = 2000, confidence: float = 0.95,
                      seed: int = 0) -> PairedComparison:
    """Compare per-prompt scores `a[i]` and `b[i]` of two policies on the same prompts.

    The mean difference and the win rate are bootstrapped over the same resampled prompts (one
    index matrix), so their intervals are those of a paired design, not of two samples."""
    if test not in ("wilcoxon", "sign"):
        raise ValueError(f"test must be `wilcoxon` or `sign`, got {test!r}")
    first, second = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if first.shape != second.shape:
        raise ValueError(f"paired samples must have the same length, got {first.size} and {second.size}")
    diff = first - second
    won = (outcomes(diff, tie_epsilon) > 0).astype(float)
    counts = count_outcomes(diff, tie_epsilon)
    n = max(counts.n, 1)
    statistic, wilcoxon_p = wilcoxon_signed_rank(diff, tie_epsilon)
    decisive = counts.wins + counts.losses
    return PairedComparison(
        mean_difference=bootstrap_mean(diff, resamples=resamples, confidence=confidence, seed=seed),
        win_rate=bootstrap_mean(won, resamples=resamples, confidence=confidence, seed=seed),
        tie_rate=counts.ties / n, loss_rate=counts.losses / n, counts=counts,
        decisive_win_rate=counts.wins / decisive if decisive else float("nan"),
        wilcoxon_statistic=statistic, wilcoxon_p=wilcoxon_p, sign_p=sign_test(counts.wins, counts.losses),
        test=test)


# ----------------------------------------------------------------------------- agreement


def agreement_rate(first: Sequence[str], second: Sequence[str]) -> float:
    """Share of items both raters labelled the same (NaN for no items)."""
    if len(first) != len(second):
        raise ValueError(f"raters labelled {len(first)} and {len(second)} items; they must label the same items")
    if not first:
        return float("nan")
    return sum(x == y for x, y in zip(first, second)) / len(first)


def cohen_kappa(first: Sequence[str], second: Sequence[str]) -> float:
    """Cohen's kappa (1960) of two raters over the same items, by `sklearn.metrics.cohen_kappa_score`:

        kappa = (p_o - p_e) / (1 - p_e),  p_e = sum over labels k of p_first(k) * p_second(k)

    The label set is whatever either rater used (a label neither used adds nothing to p_e, so
    three labels a/b/tie and two give the same value when no tie occurs). When chance agreement
    is already certain (p_e = 1: both raters gave one and the same label to every item) kappa is
    0/0 and NaN is returned; no items give NaN too.
    """
    agreement_rate(first, second)  # the same-items check and its message
    if not first or len(set(first) | set(second)) < 2:
        return float("nan")
    return float(cohen_kappa_score(list(first), list(second)))


def confusion(first: Sequence[str], second: Sequence[str], labels: Sequence[str]) -> list[list[int]]:
    """counts[i][j]: items the first rater labelled `labels[i]` and the second `labels[j]`
    (`sklearn.metrics.confusion_matrix`)."""
    if not first:
        return [[0] * len(labels) for _ in labels]
    return confusion_matrix(list(first), list(second), labels=list(labels)).tolist()
