"""saturation-filter: drop endpoints whose utilization is above the threshold.

utilization = max(waiting/queue_threshold, kv/kv_cache_threshold); stale metrics count as
saturated. Fails open (the scheduler keeps all candidates if every one would be dropped).
"""

from __future__ import annotations

from pydantic import Field

from ..framework import Candidate, SchedulingRequest
from ..params import Params

TYPE = "saturation-filter"


class SaturationFilterParams(Params):
    queue_threshold: float = Field(default=5, gt=0)
    kv_cache_threshold: float = Field(default=0.8, gt=0, le=1)
    headroom: float = Field(default=0.0, ge=0)


class SaturationFilter:
    TYPE = TYPE
    Params = SaturationFilterParams

    def __init__(self, params: SaturationFilterParams | None = None) -> None:
        self.p = params or SaturationFilterParams()

    def filter(self, request: SchedulingRequest, candidates: list[Candidate]) -> list[Candidate]:
        p = self.p
        limit = 1.0 + p.headroom
        return [
            c
            for c in candidates
            if c.fresh
            and max(c.metrics.waiting / p.queue_threshold, c.metrics.kv_usage / p.kv_cache_threshold) < limit
        ]
