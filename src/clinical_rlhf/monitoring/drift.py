"""Drift detectors: PSI, two-sample Kolmogorov-Smirnov, two-sided CUSUM, IQR outliers.

Each is a small stateful monitor with one shape: `update(x)` feeds observations, a result
property reads the state, `reset()` forgets what was fed since construction (the reference
stays). Constructors check their arguments and raise `ValueError` naming the bad one.
`DriftMonitor` (drift_monitor.py) wires them to the trainer's reward and safety scores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special, stats
from scipy.stats import distributions


def _finite_1d(values: object, name: str, *, minimum: int = 0) -> np.ndarray:
    """`values` as a 1-D float64 array; `ValueError` naming `name` when a value is not finite."""
    array = np.asarray(values, dtype=np.float64).ravel()
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must hold finite numbers only; drop NaN/inf values first")
    if array.size < minimum:
        raise ValueError(f"{name} must hold at least {minimum} values, got {array.size}")
    return array


def _require(condition: bool, name: str, value: object, rule: str) -> None:
    if not condition:
        raise ValueError(f"{name} must be {rule}, got {value!r}")


# ----------------------------------------------------------------------------- PSI


class PSI:
    """Population Stability Index of the observations fed since `reset()` against a reference.

        PSI = sum_i (a_i - e_i) * ln(a_i / e_i)

    with e_i and a_i the reference and current proportions in bin i (Siddiqi 2006, "Credit Risk
    Scorecards", ch. 8; rules of thumb: < 0.1 stable, 0.1-0.25 moderate, > 0.25 major shift).

    - Bins are fixed once, from the reference: interior edges at its quantiles 1/B, ..., (B-1)/B
      (numpy's linear interpolation); equal edges (ties, e.g. a score that is mostly 1.0) are
      merged, so a discrete reference gets fewer bins rather than empty ones.
    - The outer bins are open, (-inf, q_1) and [q_{B-1}, +inf): a current value outside the
      reference range still lands in a bin. A value equal to an edge belongs to the bin on
      its right.
    - An empty bin would make ln(a/e) infinite: both proportions are floored at `epsilon`
      (not renormalised; the floor is far below one observation's share in practice).

    Counts are additive, so `update` can be called several times between resets.
    """

    def __init__(self, reference: object, bins: int = 10, epsilon: float = 1e-4) -> None:
        _require(isinstance(bins, int) and bins >= 2, "bins", bins, "an integer >= 2")
        _require(0.0 < epsilon < 1.0, "epsilon", epsilon, "in (0, 1)")
        reference = np.sort(_finite_1d(reference, "reference", minimum=2))
        self.bins = bins
        self.epsilon = epsilon
        quantiles = np.quantile(reference, np.arange(1, bins) / bins)
        self.edges = np.unique(quantiles)
        """Interior bin edges (ascending, duplicates merged); len(edges) + 1 bins."""
        self.reference_proportions = self._counts(reference) / reference.size
        self._counts_current = np.zeros(self.edges.size + 1, dtype=np.int64)

    def _counts(self, values: np.ndarray) -> np.ndarray:
        """Observations per bin.

        Naive equivalent: `np.bincount(np.searchsorted(edges, values, "right"), minlength=B)`.
        Sorting first and locating the few edges in the sorted values is ~3x faster for large
        samples (an already sorted sample skips the sort).
        """
        if values.size > 1 and not np.all(values[1:] >= values[:-1]):
            values = np.sort(values)
        below_edge = np.searchsorted(values, self.edges, side="left")
        return np.diff(below_edge, prepend=0, append=values.size)

    def update(self, x: object) -> float:
        """Add observations to the current histogram; returns the PSI so far."""
        self._counts_current += self._counts(_finite_1d(x, "x"))
        return self.psi

    @property
    def count(self) -> int:
        """Observations fed since the last reset."""
        return int(self._counts_current.sum())

    @property
    def current_proportions(self) -> np.ndarray:
        return self._counts_current / max(self.count, 1)

    @property
    def psi(self) -> float:
        """PSI of everything fed since the last reset; NaN before the first observation."""
        if self.count == 0:
            return math.nan
        expected = np.maximum(self.reference_proportions, self.epsilon)
        actual = np.maximum(self.current_proportions, self.epsilon)
        return float(np.sum((actual - expected) * np.log(actual / expected)))

    def reset(self) -> None:
        self._counts_current[:] = 0


# ----------------------------------------------------------------------------- KS


@dataclass(frozen=True, slots=True)
class KSResult:
    statistic: float
    """D = sup_x |F_ref(x) - F_cur(x)|, the largest gap between the empirical CDFs."""
    pvalue: float
    """Two-sided p-value as `scipy.stats.ks_2samp(reference, current)` reports it: identical, except
    where scipy sums Smirnov's exact series over n terms (large samples, 2.2 <= n D^2 < 370), where
    it agrees to about 1e-9 relative (`smirnov_series_sf`)."""
    drift: bool
    """pvalue < alpha."""


# scipy.stats.ks_2samp(method="auto") computes the exact distribution up to this sample size
# and Smirnov's asymptotic one (`kstwo.sf(D, round(n*m/(n+m)))`) above it. Tests pin both paths.
_SCIPY_EXACT_MAX_N = 10_000


# scipy's two-sided Kolmogorov SF (`kstwo.sf`) sums Smirnov's exact one-sided series, 2 * smirnov(n, D),
# when 2.2 <= n * D^2 < 370 and 140 < n <= 1,000,000 (above, `smirnov` switches to an asymptotic
# formula): about n * (1 - D) terms, 0.3-0.4 s at n = 500,000.
_SMIRNOV_BAND = (2.2, 370.0)
_SMIRNOV_FAST_N = (10_000, 1_000_000)
_SMIRNOV_TERMS = 10_000


def smirnov_series_sf(n: int, d: float) -> float:
    """2 * smirnov(n, d): scipy's `kstwo.sf(d, n)` inside the band 2.2 <= n d^2 < 370 (n large),
    to about 1e-9 relative, from 10,000 terms instead of n.

    Naive equivalent (Smirnov 1944; what `scipy.special.smirnov` sums, term by term)::

        2 * d * sum_{j=0}^{floor(n (1 - d))} C(n, j) (d + j/n)^(j - 1) (1 - d - j/n)^(n - j)

    The terms are positive, smooth and unimodal in j, and fall below e^-40 of the largest long
    before either end of the range (an analytic, vanishing integrand). For such a function the
    sum over every integer equals the sum over every h-th integer times h up to a Poisson
    summation error of order exp(-2 pi^2 (width / h)^2), far below double precision for
    h = n / 10,000; what is left is the rounding of log C(n, j) through `gammaln` at n ~ 1e6.
    """
    step = max(1, n // _SMIRNOV_TERMS)
    j = np.arange(0, math.floor(n * (1.0 - d)) + 1, step, dtype=np.float64)
    with np.errstate(divide="ignore"):  # the last term's (1 - d - j/n) can be 0: log 0 = -inf, term 0
        log_terms = (special.gammaln(n + 1.0) - special.gammaln(j + 1.0) - special.gammaln(n - j + 1.0)
                     + (n - j) * np.log1p(-d - j / n) + (j - 1.0) * np.log(d + j / n))
    largest = log_terms.max()
    return float(math.exp(largest + math.log(2.0 * d * step * np.exp(log_terms - largest).sum())))


def kolmogorov_two_sided_sf(statistic: float, n: float) -> float:
    """`scipy.stats.distributions.kstwo.sf(statistic, n)`, with Smirnov's series summed by
    `smirnov_series_sf` where scipy would spend n terms on it (10,000 < n <= 1,000,000 inside its band)."""
    low, high = _SMIRNOV_FAST_N
    if low < n <= high and statistic < 0.5 and _SMIRNOV_BAND[0] <= n * statistic ** 2 < _SMIRNOV_BAND[1]:
        return min(smirnov_series_sf(int(n), statistic), 1.0)
    return float(distributions.kstwo.sf(statistic, n))


def _right_ranks_sorted(sorted_values: np.ndarray) -> np.ndarray:
    """For a sorted array a: count of elements <= a[i], for each i.

    Naive equivalent: `np.searchsorted(a, a, side="right")`; this is O(n) instead of O(n log n)
    because equal values form runs and the count is the index after the run's last element.
    """
    run_ends = np.flatnonzero(sorted_values[1:] != sorted_values[:-1])
    run_ends = np.append(run_ends, sorted_values.size - 1)
    run_lengths = np.diff(run_ends, prepend=-1)
    return np.repeat(run_ends + 1, run_lengths)


def ks_statistic_sorted(
    reference_sorted: np.ndarray, reference_ranks: np.ndarray, current_sorted: np.ndarray
) -> float:
    """Two-sided two-sample KS statistic of two sorted samples, equal to scipy's bit for bit.

    Naive equivalent (scipy's own computation)::

        points = np.concatenate([ref, cur])
        gaps = (np.searchsorted(ref, points, "right") / n_ref
                - np.searchsorted(cur, points, "right") / n_cur)
        D = max(gaps.max(), np.clip(-gaps.min(), 0, 1))

    The reference's own ranks are computed once (`reference_ranks`), so a call costs one sort of
    the current sample and two searches instead of two sorts and two searches of 2n points.
    """
    n_ref, n_cur = reference_sorted.size, current_sorted.size
    gaps_at_ref = reference_ranks / n_ref - np.searchsorted(current_sorted, reference_sorted, "right") / n_cur
    gaps_at_cur = (np.searchsorted(reference_sorted, current_sorted, "right") / n_ref
                   - _right_ranks_sorted(current_sorted) / n_cur)
    largest = max(gaps_at_ref.max(), gaps_at_cur.max())
    smallest = min(gaps_at_ref.min(), gaps_at_cur.min())
    return float(max(largest, np.clip(-smallest, 0.0, 1.0)))


class KSTest:
    """Two-sample Kolmogorov-Smirnov test of the observations fed since `reset()` against a
    fixed reference (two-sided; statistic identical to `scipy.stats.ks_2samp`'s, p-value as well
    except inside Smirnov's band, where it agrees to about 1e-9 relative: `KSResult.pvalue`).

    The reference is sorted once. Small samples (both <= 10,000) go straight to scipy, whose
    exact method adjusts the statistic; larger ones use `ks_statistic_sorted` and scipy's
    asymptotic p-value (`kolmogorov_two_sided_sf`), as `ks_2samp` itself does at that size.
    """

    def __init__(self, reference: object, alpha: float = 0.05) -> None:
        _require(0.0 < alpha < 1.0, "alpha", alpha, "in (0, 1)")
        self.alpha = alpha
        self.reference_sorted = np.sort(_finite_1d(reference, "reference", minimum=1))
        self._reference_ranks: np.ndarray | None = None
        self._current: list[np.ndarray] = []
        self._result: KSResult | None = None

    def update(self, x: object) -> None:
        """Add observations to the current sample (the test runs when `result` is read)."""
        values = _finite_1d(x, "x")
        if values.size:
            self._current.append(values)
            self._result = None

    @property
    def count(self) -> int:
        return sum(part.size for part in self._current)

    @property
    def result(self) -> KSResult | None:
        """The test on everything fed since the last reset; None before the first observation."""
        if self._result is None and self._current:
            self._result = self._run(np.concatenate(self._current))
        return self._result

    def _run(self, current: np.ndarray) -> KSResult:
        reference = self.reference_sorted
        if max(reference.size, current.size) <= _SCIPY_EXACT_MAX_N:
            outcome = stats.ks_2samp(reference, current)
            statistic, pvalue = float(outcome.statistic), float(outcome.pvalue)
        else:
            if self._reference_ranks is None:
                self._reference_ranks = _right_ranks_sorted(reference)
            statistic = ks_statistic_sorted(reference, self._reference_ranks, np.sort(current))
            larger, smaller = sorted((float(reference.size), float(current.size)), reverse=True)
            effective_n = np.round(larger * smaller / (larger + smaller))
            pvalue = float(np.clip(kolmogorov_two_sided_sf(statistic, effective_n), 0.0, 1.0))
        return KSResult(statistic=statistic, pvalue=pvalue, drift=pvalue < self.alpha)

    def reset(self) -> None:
        self._current = []
        self._result = None


# ----------------------------------------------------------------------------- CUSUM


class CUSUM:
    """Two-sided tabular CUSUM (Page 1954; Montgomery, "Statistical Quality Control", 9.1) on
    standardised observations z = (x - mean) / std:

        upper_t = max(0, upper_{t-1} + z_t - slack)
        lower_t = max(0, lower_{t-1} - z_t - slack)
        statistic = max(upper, lower);  drift while statistic > threshold

    `slack` (k) and `threshold` (h) are in standard deviations. The textbook choice k = 0.5,
    h = 5 detects a one-sigma mean shift after about ten observations while an unshifted process
    runs several hundred observations between false alarms (Montgomery, table 9.3).

    Mean and std are either given (e.g. from a reference window) or estimated from the first
    `warm_up` observations, which do not enter the sums. The sums are not restarted after a
    crossing: the statistic stays high while the shift lasts and decays once the mean returns;
    `reset()` restarts them (and the warm-up, when the reference was estimated).
    """

    def __init__(
        self,
        slack: float = 0.5,
        threshold: float = 5.0,
        *,
        mean: float | None = None,
        std: float | None = None,
        warm_up: int = 30,
        min_std: float = 1e-12,
    ) -> None:
        _require(math.isfinite(slack) and slack >= 0.0, "slack", slack, "a finite number >= 0")
        _require(math.isfinite(threshold) and threshold > 0.0, "threshold", threshold, "a finite number > 0")
        _require(min_std > 0.0, "min_std", min_std, "> 0")
        _require((mean is None) == (std is None), "mean", mean, "given together with std (or neither)")
        if mean is not None:
            _require(math.isfinite(mean), "mean", mean, "finite")
            _require(math.isfinite(std) and std >= 0.0, "std", std, "a finite number >= 0")
        else:
            _require(isinstance(warm_up, int) and warm_up >= 2, "warm_up", warm_up,
                     "an integer >= 2 when mean and std are not given")
        self.slack = slack
        self.threshold = threshold
        self.warm_up = warm_up
        self.min_std = min_std
        self._given = (mean, std) if mean is not None else None
        self.reset()

    def reset(self) -> None:
        self.upper = 0.0
        self.lower = 0.0
        self.count = 0
        """Observations that entered the sums since the last reset."""
        self._warm: list[np.ndarray] = []
        if self._given is not None:
            self.mean, std = self._given
            self.std = max(float(std), self.min_std)
        else:
            self.mean = self.std = math.nan

    @property
    def ready(self) -> bool:
        """Whether the warm-up is over (always true when mean and std were given)."""
        return not math.isnan(self.mean)

    @property
    def statistic(self) -> float:
        return max(self.upper, self.lower)

    @property
    def drift(self) -> bool:
        return self.statistic > self.threshold

    def update(self, x: object) -> float:
        """Feed observations in order; returns the statistic after the last one."""
        values = _finite_1d(x, "x")
        if not self.ready:
            self._warm.append(values)
            pooled = np.concatenate(self._warm)
            if pooled.size < self.warm_up:
                return self.statistic
            head, values = pooled[: self.warm_up], pooled[self.warm_up:]
            self.mean = float(head.mean())
            self.std = max(float(head.std(ddof=1)), self.min_std)
            self._warm = []
        if values.size:
            z = (values - self.mean) / self.std
            self.upper = _lindley_last(self.upper, z - self.slack)
            self.lower = _lindley_last(self.lower, -z - self.slack)
            self.count += values.size
        return self.statistic


def _lindley_last(start: float, increments: np.ndarray) -> float:
    """Last value of s_t = max(0, s_{t-1} + y_t), s_0 = start >= 0, without a Python loop.

    Naive equivalent::

        s = start
        for y in increments:
            s = max(0.0, s + y)

    Closed form (Lindley's recursion): with c_t = start + y_1 + ... + y_t,
    s_t = c_t - min(0, c_1, ..., c_t).
    """
    cumulative = start + np.cumsum(increments)
    return float(cumulative[-1] - min(0.0, float(cumulative.min())))


# ----------------------------------------------------------------------------- IQR


class IQROutliers:
    """Share of observations outside Tukey's fences computed from the reference:

        lower = Q1 - factor * IQR,  upper = Q3 + factor * IQR,  IQR = Q3 - Q1

    (Tukey 1977; factor 1.5 flags "outside" values, 3.0 "far out"). Quartiles use numpy's linear
    interpolation. A value exactly on a fence is not an outlier.
    """

    def __init__(self, reference: object, factor: float = 1.5) -> None:
        _require(math.isfinite(factor) and factor > 0.0, "factor", factor, "a finite number > 0")
        reference = _finite_1d(reference, "reference", minimum=1)
        self.factor = factor
        q1, q3 = np.quantile(reference, [0.25, 0.75])
        spread = q3 - q1
        self.lower = float(q1 - factor * spread)
        self.upper = float(q3 + factor * spread)
        self.reset()

    def update(self, x: object) -> float:
        """Count observations; returns the outlier fraction so far."""
        values = _finite_1d(x, "x")
        self.outliers += int(np.count_nonzero((values < self.lower) | (values > self.upper)))
        self.count += values.size
        return self.outlier_fraction

    @property
    def outlier_fraction(self) -> float:
        """Outliers / observations since the last reset; NaN before the first observation."""
        return self.outliers / self.count if self.count else math.nan

    def reset(self) -> None:
        self.outliers = 0
        self.count = 0
