"""Trend detection that stays honest on autocorrelated metrics.

Mann-Kendall's S statistic with the Hamed & Rao (1998) variance correction: the
series is detrended with the Theil-Sen slope, the autocorrelation of its ranks is
measured, and the variance of S is inflated by the effective-sample-size factor
``n/n*`` computed from the significant lags. Without the correction, a metric that
wanders (AR(1) noise, a moving-window throughput) looks like a trend far too often.
The Theil-Sen slope (median of pairwise slopes) gives the rate. Pure Python.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class TrendResult:
    n: int
    s: int
    z: float
    p: float
    slope: float
    """Theil-Sen slope in value units per time unit (per index if no times)."""
    intercept: float
    correction: float
    """Hamed-Rao variance inflation factor n/n* (1.0 = no autocorrelation)."""

    @property
    def confidence(self) -> float:
        """1 - p of the two-sided test: the probability statement we report."""
        return 1.0 - self.p

    @property
    def direction(self) -> str:
        return "increasing" if self.z > 0 else "decreasing" if self.z < 0 else "none"

    def significant(self, alpha: float = 0.05) -> bool:
        return self.p < alpha

    def relative_change(self, span: float) -> float:
        """Change over ``span`` time units relative to the fitted level at the start."""
        base = self.intercept
        if abs(base) < 1e-12:
            return 0.0
        return self.slope * span / abs(base)


def _phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


def theil_sen(values: Sequence[float], times: Sequence[float] | None = None) -> tuple[float, float]:
    """(slope, intercept at the first time): medians of pairwise slopes and residuals."""
    n = len(values)
    ts = list(times) if times is not None else [float(i) for i in range(n)]
    if n < 2:
        return 0.0, float(values[0]) if n else 0.0
    slopes = []
    for i in range(n - 1):
        vi, ti = values[i], ts[i]
        for j in range(i + 1, n):
            dt = ts[j] - ti
            if dt != 0:
                slopes.append((values[j] - vi) / dt)
    slope = _median(slopes) if slopes else 0.0
    t0 = ts[0]
    intercept = _median([v - slope * (t - t0) for v, t in zip(values, ts, strict=True)])
    return slope, intercept


def _median(xs: list[float]) -> float:
    ys = sorted(xs)
    m = len(ys) // 2
    return ys[m] if len(ys) % 2 else (ys[m - 1] + ys[m]) / 2.0


def _ranks(xs: Sequence[float]) -> list[float]:
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    ranks = [0.0] * len(xs)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        r = (i + j) / 2.0 + 1.0
        for k in range(i, j + 1):
            ranks[order[k]] = r
        i = j + 1
    return ranks


def _acf(xs: Sequence[float], max_lag: int) -> list[float]:
    n = len(xs)
    mean = sum(xs) / n
    d = [x - mean for x in xs]
    c0 = sum(x * x for x in d)
    if c0 == 0:
        return [0.0] * (max_lag + 1)
    return [sum(d[i] * d[i + k] for i in range(n - k)) / c0 for k in range(max_lag + 1)]


def mann_kendall(
    values: Sequence[float], times: Sequence[float] | None = None, alpha: float = 0.05, max_lag: int | None = None
) -> TrendResult:
    """Mann-Kendall trend test with the Hamed-Rao autocorrelation correction."""
    x = [float(v) for v in values]
    n = len(x)
    if n < 4:
        return TrendResult(n, 0, 0.0, 1.0, 0.0, x[0] if x else 0.0, 1.0)
    s = 0
    for i in range(n - 1):
        xi = x[i]
        for j in range(i + 1, n):
            s += _sign(x[j] - xi)
    # Variance with the tie correction.
    counts: dict[float, int] = {}
    for v in x:
        counts[v] = counts.get(v, 0) + 1
    ties = sum(t * (t - 1) * (2 * t + 5) for t in counts.values() if t > 1)
    var_s = (n * (n - 1) * (2 * n + 5) - ties) / 18.0
    slope, intercept = theil_sen(x, times)
    # Hamed-Rao: autocorrelation of the ranks of the detrended series.
    ts = list(times) if times is not None else [float(i) for i in range(n)]
    detrended = [v - slope * (t - ts[0]) for v, t in zip(x, ts, strict=True)]
    lags = n - 1 if max_lag is None else min(max_lag, n - 1)
    rho = _acf(_ranks(detrended), lags)
    bound = _z_crit(alpha) / math.sqrt(n)
    acc = 0.0
    for k in range(1, lags + 1):
        if abs(rho[k]) > bound:
            acc += (n - k) * (n - k - 1) * (n - k - 2) * rho[k]
    correction = 1.0 + 2.0 / (n * (n - 1) * (n - 2)) * acc
    # Sample autocorrelations of a short series are biased toward zero, so the
    # correction above undercorrects a persistent metric. Also fit AR(1) to lag 1
    # (with the first-order bias correction (1 + 4 phi) / n) and use phi**k for every
    # lag; keep the larger (more conservative) factor.
    phi = rho[1] if lags >= 1 else 0.0
    if phi > bound:
        phi = min(phi + (1.0 + 4.0 * phi) / n, 0.98)
        acc_ar = sum((n - k) * (n - k - 1) * (n - k - 2) * phi**k for k in range(1, n - 2))
        correction = max(correction, 1.0 + 2.0 / (n * (n - 1) * (n - 2)) * acc_ar)
    correction = max(correction, 1.0)
    var_s *= correction
    if var_s <= 0 or s == 0:
        z = 0.0
    else:
        z = (s - _sign(s)) / math.sqrt(var_s)
    p = 2.0 * (1.0 - _phi(abs(z)))
    return TrendResult(n, s, z, p, slope, intercept, correction)


def _z_crit(alpha: float) -> float:
    """Two-sided normal quantile by bisection on the CDF (no scipy needed)."""
    target = 1.0 - alpha / 2.0
    lo, hi = 0.0, 10.0
    for _ in range(60):
        mid = (lo + hi) / 2.0
        if _phi(mid) < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2.0


def downsample(points: Sequence[tuple[float, float]], buckets: int) -> list[tuple[float, float]]:
    """Means over ``buckets`` equal time bins: fewer, less correlated points. Each bin's
    times and values are summed by ``sum`` in the order given (the same floats as
    summing its (t, v) pairs), in one pass without a call per point: the degradation
    detector bins up to 720 points every simulated minute (before: 0.87 of 5.6 s of a
    headless demo day's main thread, profiled)."""
    if len(points) <= buckets or buckets <= 0:
        return list(points)
    t0, t1 = points[0][0], points[-1][0]
    width = (t1 - t0) / buckets or 1.0
    last = buckets - 1
    times: list[list[float]] = [[] for _ in range(buckets)]
    values: list[list[float]] = [[] for _ in range(buckets)]
    for t, v in points:
        i = int((t - t0) / width)
        if i > last:
            i = last
        times[i].append(t)
        values[i].append(v)
    return [(sum(bt) / len(bt), sum(bv) / len(bv)) for bt, bv in zip(times, values, strict=True) if bt]
