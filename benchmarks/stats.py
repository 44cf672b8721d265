"""Statistics used by every report: percentiles, histogram quantiles, summaries, goodput."""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0..100) like numpy's default; None if empty."""
    if not values:
        return None
    xs = sorted(values)
    if len(xs) == 1:
        return float(xs[0])
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = math.ceil(pos)
    if lo == hi:
        return float(xs[lo])
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def summarize(values: Iterable[float], qs: Sequence[float] = (50, 90, 99)) -> dict[str, float | None]:
    xs = sorted(v for v in values if v is not None)
    out: dict[str, float | None] = {f"p{int(q) if float(q).is_integer() else q}": percentile(xs, q) for q in qs}
    out["mean"] = sum(xs) / len(xs) if xs else None
    out["n"] = len(xs)
    return out


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """Prometheus-style quantile (q in 0..1) from cumulative (upper_bound, count) buckets.

    Linear interpolation inside the bucket, lower bound 0 for the first bucket; if the rank
    falls in the +Inf bucket the largest finite bound is returned (as Prometheus does).
    """
    bs = sorted(buckets, key=lambda b: b[0])
    if not bs or bs[-1][1] <= 0:
        return None
    total = bs[-1][1]
    rank = q * total
    prev_bound, prev_count = 0.0, 0.0
    for bound, count in bs:
        if count >= rank:
            if math.isinf(bound):
                return prev_bound
            if count == prev_count:
                return bound
            return prev_bound + (bound - prev_bound) * (rank - prev_count) / (count - prev_count)
        prev_bound, prev_count = bound, count
    return prev_bound


def diff_buckets(after: Sequence[tuple[float, float]], before: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Cumulative buckets of the observations made between two scrapes."""
    b = dict(before)
    return [(le, c - b.get(le, 0.0)) for le, c in after]


def parse_histogram(text: str, name: str) -> list[tuple[float, float]]:
    """Cumulative buckets of one (unlabelled or single-series) histogram from Prometheus text."""
    out: dict[float, float] = {}
    prefix = name + "_bucket{"
    for line in text.splitlines():
        if not line.startswith(prefix):
            continue
        labels, _, value = line.rpartition(" ")
        i = labels.find('le="')
        le = labels[i + 4:labels.index('"', i + 4)]
        bound = math.inf if le == "+Inf" else float(le)
        out[bound] = out.get(bound, 0.0) + float(value)
    return sorted(out.items())


def goodput(ttfts: Sequence[float | None], slo_s: float, duration_s: float) -> float:
    """Requests per second that completed with TTFT within the SLO."""
    if duration_s <= 0:
        return 0.0
    return sum(1 for t in ttfts if t is not None and t <= slo_s) / duration_s


def cdf(values: Sequence[float]) -> tuple[list[float], list[float]]:
    xs = sorted(values)
    n = len(xs)
    return xs, [(i + 1) / n for i in range(n)]


# Two-sided 95% Student t quantiles t(0.975, df); between listed df the next smaller df is used
# (wider, conservative); beyond 120 the normal 1.96.
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262,
         10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110,
         18: 2.101, 19: 2.093, 20: 2.086, 25: 2.060, 30: 2.042, 40: 2.021, 60: 2.000, 120: 1.980}


def t975(df: int) -> float:
    if df < 1:
        raise ValueError("a confidence interval needs at least 2 values")
    if df > 120:
        return 1.96
    return _T975[max(k for k in _T975 if k <= df)]


def mean_ci(values: Sequence[float | None]) -> dict[str, float | int | None]:
    """Mean and 95% confidence interval (Student t) of independent per-seed values.

    None values (a metric a run could not produce) are dropped and counted in `missing`."""
    xs = [float(v) for v in values if v is not None]
    n = len(xs)
    out: dict[str, float | int | None] = {"mean": None, "lo": None, "hi": None, "sd": None, "n": n,
                                          "missing": len(values) - n}
    if not n:
        return out
    m = sum(xs) / n
    out["mean"] = m
    if n < 2:
        return out
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1))
    half = t975(n - 1) * sd / math.sqrt(n)
    out.update(lo=m - half, hi=m + half, sd=sd)
    return out


def paired_diff_ci(a: Sequence[float | None], b: Sequence[float | None]) -> dict[str, float | int | None]:
    """Mean and 95% CI of a_i - b_i over the seeds where both exist (same plan per seed)."""
    return mean_ci([x - y for x, y in zip(a, b) if x is not None and y is not None])


def intervals_separate(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """True when two mean_ci intervals do not overlap."""
    if None in (a.get("lo"), a.get("hi"), b.get("lo"), b.get("hi")):
        return False
    return a["hi"] < b["lo"] or b["hi"] < a["lo"]
