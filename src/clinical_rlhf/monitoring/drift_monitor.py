"""Per-iteration drift of the reward and safety-score distributions against a reference window.

The first `monitoring.drift.reference_iterations` iterations form the first reference (extended
until it holds `min_samples` values per signal). From then on every iteration is tested: PSI, KS
and IQR outliers on the tested sample, which is that iteration's values pooled with the
iterations just before it until it holds `min_samples` (with large batches: the iteration alone;
until enough iterations follow the reference, only CUSUM is reported). Small samples would make
PSI pure noise (see `DriftConfig.min_samples`).

What the tested sample is compared with is `monitoring.drift.reference`:

- `rolling` (default): the `min_samples` values just before the tested sample. Training is
  meant to move the reward, so a reference frozen at the first iterations calls every
  improvement "drift" (the demo fired at every iteration from 14 to 40); comparing like with
  like, recent against just-before, flags a sudden change of distribution (a collapse, reward
  hacking, a broken batch) and not the steady progress PPO is there to make.
- `fixed`: the first reference for the whole run (the distribution shift since the start).

CUSUM gets each iteration's values once, in order, and accumulates against the first
reference's mean: it measures the sustained shift since the start, which a working run shows. The results are namespaced metrics
(they go to the tracker, the Prometheus exporter and the alert rules):

    drift/<signal>/psi               PSI of this iteration against the reference
    drift/<signal>/ks_statistic      two-sample KS statistic D
    drift/<signal>/ks_pvalue         its p-value
    drift/<signal>/ks_drift          1.0 when ks_pvalue < ks_alpha, else 0.0
    drift/<signal>/cusum             two-sided CUSUM statistic (reference standard deviations)
    drift/<signal>/cusum_drift       1.0 while cusum > cusum_threshold, else 0.0
    drift/<signal>/outlier_fraction  share of the tested sample outside the reference's Tukey fences
    drift/<signal>/samples           size of the tested sample

with <signal> in {reward, safety}. Non-finite values are dropped before testing.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from clinical_rlhf.config import DriftConfig
from clinical_rlhf.monitoring.drift import CUSUM, PSI, IQROutliers, KSTest

SIGNALS = ("reward", "safety")

CUSUM_MIN_STD = 1e-3
"""Floor of the reference standard deviation used by CUSUM. A reference of identical scores
(every answer safe: all 1.0) has std 0; scores and rewards live on a unit scale, so a spread
below 0.001 is treated as 0.001 instead of dividing by zero."""


class _SignalDetectors:
    """The four detectors of one signal, built from its reference sample."""

    def __init__(self, reference: np.ndarray, cfg: DriftConfig) -> None:
        self.cfg = cfg
        self.min_samples = cfg.min_samples
        self._set_reference(reference)
        std = float(reference.std(ddof=1)) if reference.size > 1 else 0.0
        self.cusum = CUSUM(cfg.cusum_slack, cfg.cusum_threshold, mean=float(reference.mean()),
                           std=std, min_std=CUSUM_MIN_STD)
        self.window: deque[np.ndarray] = deque()
        self.previous: deque[np.ndarray] = deque()
        """Rolling mode: the values just before `window`, the next reference."""

    def _set_reference(self, reference: np.ndarray) -> None:
        self.psi = PSI(reference, bins=self.cfg.psi_bins)
        self.ks = KSTest(reference, alpha=self.cfg.ks_alpha)
        self.iqr = IQROutliers(reference, factor=self.cfg.iqr_factor)

    def _slide(self, sample: np.ndarray) -> int:
        """Add `sample` to the tested window, keep the window just large enough, and (rolling)
        move what leaves it into `previous`, trimmed the same way. Returns the window's size."""
        self.window.append(sample)
        pooled = sum(part.size for part in self.window)
        while pooled - self.window[0].size >= self.min_samples:
            pooled -= self.window[0].size
            self.previous.append(self.window.popleft())
        held = sum(part.size for part in self.previous)
        while self.previous and held - self.previous[0].size >= self.min_samples:
            held -= self.previous.popleft().size
        return pooled

    def update(self, sample: np.ndarray) -> dict[str, float]:
        if sample.size == 0:
            return {}
        self.cusum.update(sample)
        pooled = self._slide(sample)
        cusum = {"cusum": self.cusum.statistic, "cusum_drift": float(self.cusum.drift)}
        if pooled < self.min_samples:  # right after the reference: not enough values yet
            return cusum
        tested = np.concatenate(self.window)
        rolling = self.cfg.reference == "rolling"
        if rolling and sum(part.size for part in self.previous) >= self.min_samples:
            self._set_reference(np.concatenate(self.previous))  # until then: the first reference
        for detector in (self.psi, self.ks, self.iqr):
            detector.reset()  # each tested sample stands alone; CUSUM keeps accumulating
            detector.update(tested)
        ks = self.ks.result
        return {
            "psi": self.psi.psi,
            "ks_statistic": ks.statistic,
            "ks_pvalue": ks.pvalue,
            "ks_drift": float(ks.drift),
            **cusum,
            "outlier_fraction": self.iqr.outlier_fraction,
            "samples": float(tested.size),
        }


def _finite(values: object) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).ravel()
    return array[np.isfinite(array)]


class DriftMonitor:
    """`update(step, rewards, safety_scores) -> metrics`; empty while the reference fills."""

    def __init__(self, cfg: DriftConfig) -> None:
        if not isinstance(cfg, DriftConfig):
            raise ValueError(f"cfg must be a DriftConfig (monitoring.drift), got {type(cfg).__name__}")
        self.cfg = cfg
        self.reset()

    def reset(self) -> None:
        """Forget the reference and every detector state."""
        self._reference: dict[str, list[np.ndarray]] = {signal: [] for signal in SIGNALS}
        self.reference_steps: list[int] = []
        """Iterations (steps) that formed the reference window."""
        self._detectors: dict[str, _SignalDetectors] | None = None
        self.result: dict[str, float] = {}
        """Metrics of the last update (empty during the reference window)."""

    @property
    def ready(self) -> bool:
        """Whether the reference window is complete and iterations are being tested."""
        return self._detectors is not None

    def update(self, step: int, rewards: object, safety_scores: object) -> dict[str, float]:
        samples = {"reward": _finite(rewards), "safety": _finite(safety_scores)}
        if self._detectors is None:
            for signal, sample in samples.items():
                self._reference[signal].append(sample)
            self.reference_steps.append(int(step))
            sizes = [sum(part.size for part in parts) for parts in self._reference.values()]
            observed = [size for size in sizes if size] or [0]  # a signal never seen is not waited for
            enough_iterations = len(self.reference_steps) >= self.cfg.reference_iterations
            if enough_iterations and min(observed) >= self.cfg.min_samples:
                self._build_detectors()
            self.result = {}
            return {}
        metrics: dict[str, float] = {}
        for signal, sample in samples.items():
            detectors = self._detectors.get(signal)
            if detectors is not None:
                for name, value in detectors.update(sample).items():
                    metrics[f"drift/{signal}/{name}"] = float(value)
        self.result = metrics
        return dict(metrics)

    def _build_detectors(self) -> None:
        self._detectors = {}
        for signal, parts in self._reference.items():
            reference = np.concatenate(parts)
            # PSI needs two values to place bins; a signal never observed is simply not tested.
            if reference.size >= 2:
                self._detectors[signal] = _SignalDetectors(reference, self.cfg)
