"""Bootstrap confidence intervals over images, plain and paired.

Percentile bootstrap of the mean: resample the images with replacement ``n_boot`` times, take the
mean of each resample, and report the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles. The
generator is seeded, so a report is reproducible to the digit. A paired comparison resamples the
*same* images for both methods (the difference per image is bootstrapped), which is what makes a
small but consistent gain significant.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["N_BOOT", "Interval", "bootstrap_ci", "bootstrap_mean", "paired_difference", "unpaired_difference"]

N_BOOT = 2000
LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """A mean over ``n`` images with its bootstrap interval ``[lo, hi]``."""

    mean: float
    lo: float
    hi: float
    n: int

    @property
    def excludes_zero(self) -> bool:
        return self.n > 1 and (self.lo > 0 or self.hi < 0)


def _clean(values) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64).ravel()
    return a[np.isfinite(a)]


def bootstrap_ci(values, n_boot: int = N_BOOT, level: float = LEVEL, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (NaN/inf dropped). One value gives
    ``(v, v)``; no values give ``(nan, nan)``."""
    a = _clean(values)
    if a.size == 0:
        return (float("nan"), float("nan"))
    if a.size == 1 or np.all(a == a[0]):
        return (float(a[0]), float(a[0]))
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    step = max(1, 2_000_000 // a.size)  # resample in blocks: bounded memory for large sets
    for start in range(0, n_boot, step):
        idx = rng.integers(0, a.size, size=(min(step, n_boot - start), a.size))
        means[start:start + idx.shape[0]] = a[idx].mean(axis=1)
    q = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [q, 1.0 - q])
    return (float(lo), float(hi))


def bootstrap_mean(values, n_boot: int = N_BOOT, level: float = LEVEL, seed: int = 0) -> Interval:
    a = _clean(values)
    lo, hi = bootstrap_ci(a, n_boot, level, seed)
    return Interval(float(a.mean()) if a.size else float("nan"), lo, hi, int(a.size))


def paired_difference(a: dict, b: dict, n_boot: int = N_BOOT, level: float = LEVEL, seed: int = 0) -> Interval | None:
    """Mean of ``a[image] - b[image]`` over the images both have (finite values), with its paired
    bootstrap interval; ``None`` when they share no image."""
    common = sorted(k for k in a.keys() & b.keys() if np.isfinite(a[k]) and np.isfinite(b[k]))
    if not common:
        return None
    diff = np.array([a[k] - b[k] for k in common], dtype=np.float64)
    return bootstrap_mean(diff, n_boot, level, seed)


def unpaired_difference(a, b, n_boot: int = N_BOOT, level: float = LEVEL, seed: int = 0) -> Interval | None:
    """``mean(a) - mean(b)`` for different image sets: both are resampled independently."""
    x, y = _clean(a), _clean(b)
    if x.size == 0 or y.size == 0:
        return None
    rng = np.random.default_rng(seed)
    mx = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    my = y[rng.integers(0, y.size, size=(n_boot, y.size))].mean(axis=1)
    q = (1.0 - level) / 2.0
    lo, hi = np.quantile(mx - my, [q, 1.0 - q])
    return Interval(float(x.mean() - y.mean()), float(lo), float(hi), int(min(x.size, y.size)))
