"""terminationGracePeriodSeconds from seed 001's drain formula (a pure function).

The seed's reasoning, as arithmetic:

1. The slowest request that can still be running when the pod gets SIGTERM generates
   ``max_output_tokens`` tokens at the slowest time per output token (max batch, no prompt work):
   decode = 4096 x 10 ms = 40.96 s.
2. Prompt (prefill) work for other requests delays those tokens: add a fraction of the decode
   time (the seed goes 40 s -> 55 s, i.e. +35 %): 55.3 s.
3. The pod first spends its preStop sleep waiting for load balancers to stop sending traffic:
   + 30 s = 85.3 s.
4. The kubelet's hard kill also covers a hung GPU, so keep it proportional with a safety
   factor: x 1.5 = 127.9 s.
5. Round up to a multiple of 10 s: 130 s (the seed's value).

Queued requests at shutdown are not covered: overload is an expected failure mode (seed 001);
raise ``safety_factor`` if your traffic is periodic and queues build up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class DrainBreakdown:
    decode_seconds: float
    with_prefill_seconds: float
    with_pre_stop_seconds: float
    with_safety_seconds: float
    grace_period_seconds: int


def drain_breakdown(
    max_output_tokens: int,
    time_per_output_token_ms: float,
    prefill_overhead: float,
    pre_stop_seconds: float,
    safety_factor: float,
    round_to: int = 10,
) -> DrainBreakdown:
    """Every step of the formula (for docs and tests); the last field is the grace period."""
    if max_output_tokens < 1 or time_per_output_token_ms <= 0:
        raise ValueError("max_output_tokens must be >= 1 and time_per_output_token_ms > 0")
    if prefill_overhead < 0 or pre_stop_seconds < 0 or safety_factor < 1 or round_to < 1:
        raise ValueError("prefill_overhead and pre_stop_seconds must be >= 0, safety_factor >= 1, round_to >= 1")
    decode = max_output_tokens * time_per_output_token_ms / 1000.0
    prefill = decode * (1.0 + prefill_overhead)
    pre_stop = prefill + pre_stop_seconds
    safe = pre_stop * safety_factor
    # round() first: 120.00000000000001 from float noise must stay 120, not become 130.
    grace = int(math.ceil(round(safe, 6) / round_to) * round_to)
    return DrainBreakdown(decode, prefill, pre_stop, safe, grace)


def termination_grace_period_seconds(
    max_output_tokens: int = 4096,
    time_per_output_token_ms: float = 10.0,
    prefill_overhead: float = 0.35,
    pre_stop_seconds: float = 30,
    safety_factor: float = 1.5,
) -> int:
    """Seed 001's drain bound, rounded up to 10 s. Defaults give exactly 130."""
    return drain_breakdown(
        max_output_tokens, time_per_output_token_ms, prefill_overhead, pre_stop_seconds, safety_factor
    ).grace_period_seconds
