"""Correlation between metric scores and human opinion (or any reference ordering).

The four coefficients the IQA literature reports, on paired vectors ``pred`` (metric scores) and
``mos`` (opinion scores, or another ordering such as a distortion level):

- `srcc`: Spearman rank-order correlation (Pearson correlation of the ranks; tied values share
  their average rank), equal to ``scipy.stats.spearmanr``;
- `krcc`: Kendall rank-order correlation, tau-b (ties corrected), ``scipy.stats.kendalltau``;
- `plcc`: Pearson linear correlation of the raw values, ``scipy.stats.pearsonr``;
- `plcc_logistic`: Pearson correlation after the VQEG 4-parameter logistic mapping of ``pred`` to
  ``mos``, ``f(x) = (b1 - b2) / (1 + exp(-(x - b3) / |b4|)) + b2``, fitted by least squares
  (``scipy.optimize.curve_fit``) from ``b1 = max(mos)``, ``b2 = min(mos)``, ``b3 = mean(pred)``,
  ``b4 = std(pred) / 4`` (``b1``/``b2`` swapped when the raw correlation is negative). The fitted
  mapping can be decreasing (``b1 < b2``); the coefficient then carries a minus sign, so that
  its sign means what SRCC's sign means. When the fit fails (no convergence, constant input,
  non-finite result) the raw PLCC is returned and `fit_logistic` says why (``ok=False``).

Pairs where either value is NaN or infinite are dropped. With fewer than 2 pairs, or when either
side is constant, a coefficient is undefined: NaN, never an exception.

`correlations` adds 95 % percentile bootstrap intervals: the pairs (images) are resampled with
replacement ``n_boot`` times by ``numpy.random.default_rng(seed)``; resamples where a coefficient
is undefined are left out of its interval. For ``plcc_logistic`` the mapping fitted on all pairs
is applied to each resample (refitting 1000 times would cost about a minute per metric), so its
interval shows the sampling of images, not the uncertainty of the fit itself.

Sign convention: +1 means "the metric orders images as the reference does". Scores whose lower
values mean better quality (NIQE, LPIPS, DMOS) are flipped first with `orient`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import SrbenchError

__all__ = ["LEVEL", "N_BOOT", "LogisticFit", "correlations", "fit_logistic", "krcc", "logistic", "orient", "plcc",
           "plcc_logistic", "srcc"]

N_BOOT = 1000
LEVEL = 0.95
COEFFICIENTS = ("srcc", "krcc", "plcc", "plcc_logistic")


def _pairs(pred: Any, mos: Any) -> tuple[np.ndarray, np.ndarray]:
    """Both as float64 vectors with the pairs holding NaN/inf dropped."""
    x = np.asarray(pred, dtype=np.float64).ravel()
    y = np.asarray(mos, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise SrbenchError(f"pred and mos must have the same length, got {x.size} and {y.size}")
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep]


def orient(pred: Any, higher_better: bool) -> np.ndarray:
    """``pred`` as float64, negated when lower values are better, so that higher is better."""
    a = np.asarray(pred, dtype=np.float64)
    return a.copy() if higher_better else -a


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    if x.size < 2:
        return math.nan
    xc, yc = x - x.mean(), y - y.mean()
    sxx, syy = float(xc @ xc), float(yc @ yc)
    if sxx <= 0.0 or syy <= 0.0:
        return math.nan
    r = float(xc @ yc) / math.sqrt(sxx * syy)
    return max(-1.0, min(1.0, r))


def _ranks(a: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(a, method="average", axis=-1)


def srcc(pred: Any, mos: Any) -> float:
    """Spearman rank-order correlation (average ranks for ties); NaN when undefined."""
    x, y = _pairs(pred, mos)
    if x.size < 2:
        return math.nan
    return _pearson(_ranks(x), _ranks(y))


def krcc(pred: Any, mos: Any) -> float:
    """Kendall's tau-b (ties corrected); NaN when undefined."""
    x, y = _pairs(pred, mos)
    return _kendall(x, y)


def _kendall(x: np.ndarray, y: np.ndarray) -> float:
    if x.size < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return math.nan
    from scipy.stats import kendalltau

    return float(kendalltau(x, y, variant="b").statistic)


def plcc(pred: Any, mos: Any) -> float:
    """Pearson linear correlation of the raw values; NaN when undefined."""
    return _pearson(*_pairs(pred, mos))


def logistic(x: Any, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    """The VQEG 4-parameter logistic ``(b1 - b2) / (1 + exp(-(x - b3) / |b4|)) + b2``."""
    z = -(np.asarray(x, dtype=np.float64) - b3) / max(abs(b4), 1e-300)
    with np.errstate(over="ignore"):
        return (b1 - b2) / (1.0 + np.exp(np.clip(z, -700.0, 700.0))) + b2


@dataclass(frozen=True)
class LogisticFit:
    """The fitted logistic: ``params`` (b1, b2, b3, b4) or ``None``; ``plcc`` (signed, see module
    doc); ``ok``; ``message`` (why it failed, empty when ok)."""

    params: tuple[float, float, float, float] | None
    plcc: float
    ok: bool
    message: str = ""

    def predict(self, x: Any) -> np.ndarray:
        if self.params is None:
            raise SrbenchError(f"no logistic mapping: {self.message}")
        return logistic(x, *self.params)


def _fit(x: np.ndarray, y: np.ndarray, p0: tuple[float, ...] | None = None) -> LogisticFit:
    raw = _pearson(x, y)
    if x.size < 5:
        return LogisticFit(None, raw, False, f"logistic fit needs at least 5 pairs, got {x.size}")
    if not np.isfinite(raw):
        return LogisticFit(None, raw, False, "logistic fit impossible: constant scores")
    if p0 is None:
        hi, lo = float(y.max()), float(y.min())
        if raw < 0:
            hi, lo = lo, hi
        p0 = (hi, lo, float(x.mean()), float(x.std()) / 4.0 or 1.0)
    from scipy.optimize import OptimizeWarning, curve_fit

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            params, _ = curve_fit(logistic, x, y, p0=p0, maxfev=20000)
    except (RuntimeError, ValueError, FloatingPointError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        return LogisticFit(None, raw, False, f"logistic fit failed ({msg}); raw PLCC reported")
    params = tuple(float(p) for p in params)
    if not all(np.isfinite(params)):
        return LogisticFit(None, raw, False, "logistic fit diverged; raw PLCC reported")
    r = _pearson(logistic(x, *params), y)
    if not np.isfinite(r):
        return LogisticFit(None, raw, False, "logistic fit is flat; raw PLCC reported")
    sign = 1.0 if params[0] >= params[1] else -1.0
    return LogisticFit(params, sign * r, True)


def fit_logistic(pred: Any, mos: Any) -> LogisticFit:
    """Fit the 4-parameter logistic of ``pred`` to ``mos`` (NaN pairs dropped)."""
    return _fit(*_pairs(pred, mos))


def plcc_logistic(pred: Any, mos: Any) -> float:
    """PLCC after the fitted logistic mapping; the raw PLCC when the fit fails (`fit_logistic`
    says why)."""
    return fit_logistic(pred, mos).plcc


# ---------------------------------------------------------------------------------------------
# bootstrap


def _rowwise_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ac = a - a.mean(axis=1, keepdims=True)
    bc = b - b.mean(axis=1, keepdims=True)
    num = np.einsum("ij,ij->i", ac, bc)
    den = np.sqrt(np.einsum("ij,ij->i", ac, ac) * np.einsum("ij,ij->i", bc, bc))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = num / den
    r[~(den > 0)] = np.nan
    return np.clip(r, -1.0, 1.0)


def _interval(values: np.ndarray, level: float) -> tuple[float, float]:
    v = values[np.isfinite(values)]
    if v.size == 0:
        return (math.nan, math.nan)
    q = (1.0 - level) / 2.0
    lo, hi = np.quantile(v, [q, 1.0 - q])
    return (float(lo), float(hi))


def correlations(pred: Any, mos: Any, n_boot: int = N_BOOT, seed: int = 0, level: float = LEVEL,
                 logistic_fit: bool = True) -> dict[str, Any]:
    """Every coefficient with its percentile bootstrap interval, as one flat dict:

    ``n`` (pairs used), ``n_dropped`` (pairs with NaN/inf), ``srcc``, ``srcc_lo``, ``srcc_hi``,
    the same for ``krcc``, ``plcc`` and ``plcc_logistic``, ``logistic_ok`` (whether the fit
    converged on all pairs), ``logistic_params`` (b1..b4 or None) and ``note`` (empty, or why a
    coefficient is undefined or the fit failed). ``n_boot=0`` gives no intervals (NaN bounds).
    ``logistic_fit=False`` skips the logistic (its entries are NaN).
    """
    if not isinstance(n_boot, int) or n_boot < 0:
        raise SrbenchError(f"n_boot must be a non-negative int, got {n_boot!r}")
    if not 0.0 < level < 1.0:
        raise SrbenchError(f"level must lie in (0, 1), got {level!r}")
    x_all = np.asarray(pred, dtype=np.float64).ravel()
    x, y = _pairs(pred, mos)
    n = int(x.size)
    out: dict[str, Any] = {"n": n, "n_dropped": int(x_all.size - n)}
    notes = []
    if n < 2:
        notes.append(f"only {n} valid pair{'s' if n != 1 else ''}: correlations undefined")
    elif np.all(x == x[0]):
        notes.append("constant scores: correlations undefined (NaN)")
    elif np.all(y == y[0]):
        notes.append("constant reference values: correlations undefined (NaN)")
    fit = _fit(x, y) if logistic_fit else LogisticFit(None, math.nan, False, "")
    point = {"srcc": _pearson(_ranks(x), _ranks(y)) if n >= 2 else math.nan, "krcc": _kendall(x, y),
             "plcc": _pearson(x, y), "plcc_logistic": fit.plcc if logistic_fit else math.nan}
    if logistic_fit and not fit.ok and not notes:
        notes.append(fit.message)

    boots = {k: np.full(n_boot, math.nan) for k in COEFFICIENTS}
    if n >= 3 and n_boot > 0 and all(np.isfinite(point[k]) for k in ("srcc", "plcc")):
        rng = np.random.default_rng(seed)
        step = max(1, 2_000_000 // n)  # bounded memory for large databases
        for start in range(0, n_boot, step):
            idx = rng.integers(0, n, size=(min(step, n_boot - start), n))
            xs, ys = x[idx], y[idx]
            sl = slice(start, start + idx.shape[0])
            boots["srcc"][sl] = _rowwise_pearson(_ranks(xs), _ranks(ys))
            boots["plcc"][sl] = _rowwise_pearson(xs, ys)
            if fit.ok:  # the mapping fitted on all pairs, applied to each resample
                sign = 1.0 if fit.params[0] >= fit.params[1] else -1.0
                boots["plcc_logistic"][sl] = sign * _rowwise_pearson(logistic(xs, *fit.params), ys)
            for i in range(idx.shape[0]):
                boots["krcc"][start + i] = _kendall(xs[i], ys[i])
    for k in COEFFICIENTS:
        out[k] = point[k]
        out[f"{k}_lo"], out[f"{k}_hi"] = _interval(boots[k], level)
    out["logistic_ok"] = bool(fit.ok)
    out["logistic_params"] = fit.params
    out["note"] = "; ".join(notes)
    return out
