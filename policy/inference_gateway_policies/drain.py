"""The seed's drain formula for a model server's terminationGracePeriodSeconds.

    decode   = max_output_tokens x time per output token        (4096 x 10 ms ~ 41 s)
    serving  = decode x (1 + prefill_overhead)                   (+35 % prompt work ~ 55 s)
    drain    = (serving + preStop) x safety_factor               ((55 + 30) x 1.5 ~ 128 s)
    grace    = drain rounded up to a multiple of 10 s            (130 s, the seed's value)

The program computes the grace period with `components/builders/grace.py`; run from a checkout
the pack uses that very function. A published pack (no checkout) uses `_fallback_drain_seconds`,
which tests/policy keep equal to the builder.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from ._common import get, number


@dataclass(frozen=True)
class DrainInputs:
    max_output_tokens: int = 4096
    time_per_output_token_ms: float = 10.0
    prefill_overhead: float = 0.35
    pre_stop_seconds: float = 30
    safety_factor: float = 1.5


def _fallback_drain_seconds(d: DrainInputs) -> int:
    decode = d.max_output_tokens * d.time_per_output_token_ms / 1000.0
    total = (decode * (1 + d.prefill_overhead) + d.pre_stop_seconds) * d.safety_factor
    return int(math.ceil(round(total, 6) / 10.0) * 10)


def _builder() -> Callable[[DrainInputs], int] | None:
    """components.builders.grace when the checkout is importable (adapted to DrainInputs)."""
    try:
        from components.builders import grace  # type: ignore[import-not-found]
    except Exception:
        return None
    fn = getattr(grace, "termination_grace_period_seconds", None)
    if fn is None:
        return None

    def call(d: DrainInputs) -> int:
        return int(
            fn(
                max_output_tokens=d.max_output_tokens,
                time_per_output_token_ms=d.time_per_output_token_ms,
                prefill_overhead=d.prefill_overhead,
                pre_stop_seconds=d.pre_stop_seconds,
                safety_factor=d.safety_factor,
            )
        )

    return call


def drain_seconds(d: DrainInputs) -> int:
    fn = _builder()
    if fn is not None:
        try:
            return fn(d)
        except TypeError:  # the builder's signature moved on: keep checking with the formula
            pass
    return _fallback_drain_seconds(d)


def pre_stop_seconds(container: Mapping[str, Any]) -> float | None:
    """Seconds a preStop hook waits: `sleep.seconds`, or `exec: [.../sleep, N]`. None if none."""
    hook = get(container, "lifecycle.preStop")
    if not isinstance(hook, Mapping):
        return None
    seconds = number(get(hook, "sleep.seconds"))
    if seconds is not None:
        return seconds
    command = get(hook, "exec.command") or []
    text = " ".join(str(c) for c in command)
    m = re.search(r"\bsleep\s+(\d+(?:\.\d+)?)", text)
    if m:
        return float(m[1])
    return 0.0  # an httpGet / other hook: present, duration unknown
