"""Small statistics without SciPy: percentiles, Student t quantiles, Welch intervals."""

from __future__ import annotations

import math
from statistics import NormalDist, fmean, stdev


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default method); `q` in [0, 100]."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = math.ceil(rank)
    if low == high:
        return ordered[low]
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _betacf(a: float, b: float, x: float) -> float:
    # Lentz's continued fraction for the incomplete beta function (Numerical Recipes 6.4).
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-14:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """CDF of Student's t with `df` degrees of freedom."""
    x = df / (df + t * t)
    tail = 0.5 * _betainc(df / 2.0, 0.5, x)
    return 1.0 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """Inverse CDF of Student's t, by bisection on `t_cdf`."""
    if not 0.0 < p < 1.0:
        raise ValueError("p must be in (0, 1)")
    if df > 1e6:
        return NormalDist().inv_cdf(p)
    hi = 10.0
    while t_cdf(hi, df) < max(p, 1.0 - p):  # heavy tails (df=1) need a wide bracket
        hi *= 10.0
    lo = -hi
    for _ in range(200):
        mid = (lo + hi) / 2.0
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2.0


def welch_interval(a: list[float], b: list[float], confidence: float = 0.95) -> tuple[float, float, float] | None:
    """Difference mean(b) - mean(a) with a Welch t interval; None when either side has < 2 samples."""
    if len(a) < 2 or len(b) < 2:
        return None
    ma, mb = fmean(a), fmean(b)
    va, vb = stdev(a) ** 2 / len(a), stdev(b) ** 2 / len(b)
    diff = mb - ma
    se2 = va + vb
    if se2 == 0.0:
        return diff, diff, diff
    df = se2**2 / ((va**2) / (len(a) - 1) + (vb**2) / (len(b) - 1))
    half = t_quantile(0.5 + confidence / 2.0, df) * math.sqrt(se2)
    return diff, diff - half, diff + half


def pooled_interval(a: list[float], b: list[float], confidence: float = 0.95) -> tuple[float, float, float] | None:
    """Difference mean(b) - mean(a) with a Student t interval on the pooled variance; None below 2+2 samples.

    Repeats of one workload on one machine share their noise, so the pooled estimate is
    the right one: Welch's interval with two repeats a side has one or two degrees of
    freedom and is too wide ever to settle a decision.
    """
    if len(a) < 2 or len(b) < 2:
        return None
    ma, mb = fmean(a), fmean(b)
    df = len(a) + len(b) - 2
    pooled = ((len(a) - 1) * stdev(a) ** 2 + (len(b) - 1) * stdev(b) ** 2) / df
    se = math.sqrt(pooled * (1 / len(a) + 1 / len(b)))
    half = t_quantile(0.5 + confidence / 2.0, df) * se
    diff = mb - ma
    return diff, diff - half, diff + half
