"""The few statistics a report computes itself (everything else comes from the records)."""

from __future__ import annotations

import numpy as np
from scipy import stats

BOOTSTRAP = 2000  # resamples
LEVEL = 0.95


def gmean_interval(values, seed: int = 0) -> tuple[float, float | None, float | None]:
    """(geometric mean, lo, hi): the percentile bootstrap interval of the geometric mean,
    resampling the values (cases); no interval from fewer than two values."""
    logs = np.log(np.asarray([v for v in values if v is not None and np.isfinite(v) and v > 0], dtype=float))
    if logs.size == 0:
        return float("nan"), None, None
    g = float(np.exp(logs.mean()))
    if logs.size < 2:
        return g, None, None
    rng = np.random.default_rng(seed)
    means = logs[rng.integers(0, logs.size, size=(BOOTSTRAP, logs.size))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    return g, float(np.exp(lo)), float(np.exp(hi))


def loglog_slope(x, y) -> tuple[float, float | None, float | None]:
    """(slope, lo, hi) of log y against log x by least squares, with the t interval of the
    slope; no interval from fewer than three points."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    x, y = np.log(x[keep]), np.log(y[keep])
    if x.size < 2 or np.ptp(x) == 0:
        return float("nan"), None, None
    fit = stats.linregress(x, y)
    if x.size < 3:
        return float(fit.slope), None, None
    half = stats.t.ppf((1 + LEVEL) / 2, x.size - 2) * fit.stderr
    return float(fit.slope), float(fit.slope - half), float(fit.slope + half)


def quantile_sketch(samples, n: int = 100) -> list[float]:
    """At most ``n`` evenly spaced quantiles of the samples: a box or strip of them shows
    the same distribution as the raw samples at a bounded size in the page."""
    samples = np.asarray([s for s in samples if s is not None], dtype=float)
    if samples.size <= n:
        return samples.tolist()
    return np.quantile(samples, np.linspace(0, 1, n)).tolist()
