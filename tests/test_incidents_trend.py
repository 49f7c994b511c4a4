"""The trend detector stays honest on autocorrelated noise and still sees real trends."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from core.incidents.trend import downsample, mann_kendall, theil_sen

SERIES = 200
N = 48
ALPHA = 0.05


def ar1(seed: int, phi: float, n: int = N, trend: float = 0.0) -> list[float]:
    r = random.Random(seed)
    x, prev = [], 0.0
    for i in range(n):
        prev = phi * prev + r.gauss(0.0, 1.0)
        x.append(prev + trend * i)
    return x


def rate(phi: float, trend: float = 0.0, **kw: object) -> float:
    hits = sum(mann_kendall(ar1(seed, phi, trend=trend), alpha=ALPHA, **kw).p < ALPHA for seed in range(SERIES))  # type: ignore[arg-type]
    return hits / SERIES


def test_white_noise_rarely_triggers() -> None:
    assert rate(0.0) <= 0.08


def test_ar1_noise_rarely_triggers() -> None:
    # Plain Mann-Kendall would flag a large share of these; the Hamed-Rao correction
    # (with the AR(1) fit for short series) keeps the false-positive rate near alpha.
    assert rate(0.5) <= 0.12
    assert rate(0.8) <= 0.12


def test_correction_matters_on_ar1() -> None:
    def naive_p(x: list[float]) -> float:
        import math

        n = len(x)
        s = sum((x[j] > x[i]) - (x[j] < x[i]) for i in range(n - 1) for j in range(i + 1, n))
        var = n * (n - 1) * (2 * n + 5) / 18.0
        z = (s - (1 if s > 0 else -1 if s < 0 else 0)) / math.sqrt(var)
        return 2 * (1 - 0.5 * (1 + math.erf(abs(z) / math.sqrt(2))))

    naive = sum(naive_p(ar1(seed, 0.8)) < ALPHA for seed in range(SERIES)) / SERIES
    assert naive > 2 * rate(0.8)


def test_real_trend_is_detected() -> None:
    assert rate(0.5, trend=0.12) >= 0.85
    r = mann_kendall(ar1(7, 0.3, trend=-0.2))
    assert r.direction == "decreasing" and r.significant()


def test_theil_sen_slope_and_downsample() -> None:
    xs = [2.0 * t + 1.0 for t in range(20)]
    xs[5] = 100.0  # one outlier does not move the median slope
    slope, intercept = theil_sen(xs)
    assert abs(slope - 2.0) < 1e-9 and abs(intercept - 1.0) < 1e-9
    pts = [(float(t), float(t)) for t in range(100)]
    ds = downsample(pts, 10)
    assert len(ds) == 10 and abs(ds[0][1] - 4.5) < 1e-9


def test_downsample_gives_the_means_a_bin_by_bin_sum_gives_to_the_bit() -> None:
    """The one-pass binning gives the same floats as binning (t, v) pairs and summing
    each bin's times and values, for sorted and unsorted series, one instant (no width),
    tiny and huge values, and bins from none to more than points."""

    def reference(points: list[tuple[float, float]], buckets: int) -> list[tuple[float, float]]:
        if len(points) <= buckets or buckets <= 0:
            return list(points)
        t0, t1 = points[0][0], points[-1][0]
        width = (t1 - t0) / buckets or 1.0
        bins: list[list[tuple[float, float]]] = [[] for _ in range(buckets)]
        for t, v in points:
            bins[min(int((t - t0) / width), buckets - 1)].append((t, v))
        return [(sum(t for t, _ in b) / len(b), sum(v for _, v in b) / len(b)) for b in bins if b]

    def outcome(f: Callable[[list[tuple[float, float]], int], list[tuple[float, float]]], *args: Any) -> object:
        try:
            return f(*args)
        except IndexError:  # an unsorted series, a point far before the first: both refuse it
            return "IndexError"

    rng = random.Random(7)
    for _ in range(1500):
        start = rng.uniform(0, 1e6)
        span = rng.choice([1.0, 3600.0, 1e5])
        scale = rng.choice([1.0, 1e-9, 1e9])
        pts = [(start + rng.uniform(0, span), rng.uniform(-1e3, 1e3) * scale) for _ in range(rng.randint(0, 800))]
        if rng.random() < 0.8:
            pts.sort()
        if pts and rng.random() < 0.1:
            pts = [(pts[0][0], v) for _, v in pts]
        buckets = rng.choice([0, 1, 5, 12, 100, 1000])
        assert outcome(downsample, pts, buckets) == outcome(reference, pts, buckets)
