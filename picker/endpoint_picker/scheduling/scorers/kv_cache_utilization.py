"""kv-cache-utilization-scorer: prefer endpoints with free KV cache (1 - usage)."""

from __future__ import annotations

from ..framework import Candidate, SchedulingRequest
from ..params import NoParams

TYPE = "kv-cache-utilization-scorer"


class KvCacheUtilizationScorer:
    TYPE = TYPE
    Params = NoParams

    def __init__(self, params: NoParams | None = None) -> None:
        pass

    def score(self, request: SchedulingRequest, candidates: list[Candidate]) -> list[float]:
        return [1.0 - c.metrics.kv_usage for c in candidates]
