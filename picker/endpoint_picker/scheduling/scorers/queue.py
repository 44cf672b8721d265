"""queue-scorer: prefer endpoints with fewer waiting requests, relative to the other candidates."""

from __future__ import annotations

from ..framework import Candidate, SchedulingRequest
from ..params import NoParams

TYPE = "queue-scorer"


class QueueScorer:
    TYPE = TYPE
    Params = NoParams

    def __init__(self, params: NoParams | None = None) -> None:
        pass

    def score(self, request: SchedulingRequest, candidates: list[Candidate]) -> list[float]:
        # (maxQ - q) / (maxQ - minQ) over num_requests_waiting; all equal -> 1.0. Endpoints
        # without engine metrics use this picker's in-flight requests as their queue.
        queues = [c.metrics.waiting if c.has_metrics else c.inflight.requests for c in candidates]
        if not queues:
            return []
        lo, hi = min(queues), max(queues)
        if hi == lo:
            return [1.0] * len(queues)
        span = hi - lo
        return [(hi - q) / span for q in queues]
