"""Bootstrap confidence intervals over images, plain and paired.

Percentile bootstrap of the mean: resample the images with replacement ``n_boot`` times, take the
mean of each resample, and report the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles. The
generator is seeded, so a report is reproducible to the digit. A paired comparison resamples the
*same* images for both methods (the difference per image is bootstrapped), which is what makes a
small but consistent gain significant.

Infinite values (PSNR of an output identical to its reference is ``inf``) are never dropped
silently: a mean over values that include ``+inf`` is ``+inf`` (``-inf`` likewise; both signs give
NaN), its interval is that value at both ends, and `Interval.n_inf` counts the infinite values. A
paired difference is bootstrapped over the images where both values are finite, and its
``n_inf`` counts the common images left out because one of the two values is infinite (the report
says so next to the difference). NaN values (failed images) are excluded, as before; whoever
calls these functions counts them as failures.
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
    n: int  # values the mean is over (infinite ones included)
    n_inf: int = 0  # of those, the infinite ones; for a paired difference: the images left out for it

    @property
    def excludes_zero(self) -> bool:
        return self.n > 1 and (self.lo > 0 or self.hi < 0)


def _clean(values) -> np.ndarray:
    """The values without NaN (infinite ones kept)."""
    a = np.asarray(values, dtype=np.float64).ravel()
    return a[~np.isnan(a)]


def _infinite_mean(a: np.ndarray) -> float:
    """The mean of values of which some are infinite: +inf, -inf, or NaN when both signs occur."""
    pos, neg = bool(np.any(a == np.inf)), bool(np.any(a == -np.inf))
    return float("nan") if pos and neg else (float("inf") if pos else float("-inf"))


def bootstrap_ci(values, n_boot: int = N_BOOT, level: float = LEVEL, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (NaN dropped). One value gives
    ``(v, v)``; no values give ``(nan, nan)``; values that include ``inf`` give ``(m, m)`` with
    ``m`` their (infinite) mean, see the module doc."""
    a = _clean(values)
    if a.size == 0:
        return (float("nan"), float("nan"))
    if not np.all(np.isfinite(a)):
        m = _infinite_mean(a)
        return (m, m)
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
    """The mean of ``values`` (NaN dropped) with its percentile bootstrap interval; infinite values
    give an infinite mean and are counted in ``n_inf`` (module doc)."""
    a = _clean(values)
    lo, hi = bootstrap_ci(a, n_boot, level, seed)
    n_inf = int(np.count_nonzero(np.isinf(a)))
    mean = (_infinite_mean(a) if n_inf else float(a.mean())) if a.size else float("nan")
    return Interval(mean, lo, hi, int(a.size), n_inf)


def paired_difference(a: dict, b: dict, n_boot: int = N_BOOT, level: float = LEVEL, seed: int = 0) -> Interval | None:
    """Mean of ``a[image] - b[image]`` over the images both have with finite values in both, with
    its paired bootstrap interval; ``n_inf`` counts the common images left out because a value is
    infinite (NaN ones are failures and not counted). ``None`` when they share no image with
    finite values in both."""
    shared = [k for k in a.keys() & b.keys() if not (np.isnan(a[k]) or np.isnan(b[k]))]
    common = sorted(k for k in shared if np.isfinite(a[k]) and np.isfinite(b[k]))
    if not common:
        return None
    diff = np.array([a[k] - b[k] for k in common], dtype=np.float64)
    iv = bootstrap_mean(diff, n_boot, level, seed)
    return Interval(iv.mean, iv.lo, iv.hi, iv.n, len(shared) - len(common))


def unpaired_difference(a, b, n_boot: int = N_BOOT, level: float = LEVEL, seed: int = 0) -> Interval | None:
    """``mean(a) - mean(b)`` for different image sets: both are resampled independently. When a
    value is infinite the difference of the (infinite) means is returned as both ends, with
    ``n_inf`` the number of infinite values."""
    x, y = _clean(a), _clean(b)
    if x.size == 0 or y.size == 0:
        return None
    n_inf = int(np.count_nonzero(np.isinf(x)) + np.count_nonzero(np.isinf(y)))
    if n_inf:
        mx, my = bootstrap_mean(x).mean, bootstrap_mean(y).mean
        d = float(mx - my)
        return Interval(d, d, d, int(min(x.size, y.size)), n_inf)
    rng = np.random.default_rng(seed)
    mx = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    my = y[rng.integers(0, y.size, size=(n_boot, y.size))].mean(axis=1)
    q = (1.0 - level) / 2.0
    lo, hi = np.quantile(mx - my, [q, 1.0 - q])
    return Interval(float(x.mean() - y.mean()), float(lo), float(hi), int(min(x.size, y.size)))
