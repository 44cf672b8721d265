"""When a strategy's run is a failure rather than a measurement.

A strategy that errors must fail the run loudly (its row says FAILED and `igw bench` exits
non-zero), never report the zeros or empty percentiles its errors would otherwise produce.
"""

from __future__ import annotations

from typing import Any

MAX_ERROR_SHARE = 0.01   # more failed requests than this and the numbers are not a measurement


def check(requests: int, failed: int, detail: Any = None) -> str | None:
    """The failure reason, or None when the run is a measurement."""
    if requests <= 0:
        return "no request was sent"
    if failed == requests:
        return f"all {requests} requests failed" + (f": {detail}" if detail else "")
    if failed > MAX_ERROR_SHARE * requests:
        return f"{failed} of {requests} requests failed (> {MAX_ERROR_SHARE:.0%})" + (f": {detail}" if detail else "")
    return None


def quality(run: dict[str, Any]) -> str | None:
    """A quality run: anything but 2xx counts as failed (these workloads shed nothing)."""
    return check(run["requests"], run["requests"] - run["ok"],
                 {**run.get("status_counts", {}), **run.get("client_errors", {})} or None)


def overhead(level_run: dict[str, Any]) -> str | None:
    return check(level_run["requests"], level_run["errors"], level_run.get("error_examples") or None)
