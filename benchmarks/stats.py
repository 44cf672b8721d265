"""Statistics used by every report: percentiles, histogram quantiles, summaries, goodput."""

from __future__ import annotations

import math
from typing import Iterable, Sequence


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
