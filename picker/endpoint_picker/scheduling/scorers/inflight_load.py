"""inflight-load-scorer: prefer endpoints with fewer requests/tokens this picker has in flight.

Counts are taken at pick time, so a burst that sees one stale "best" scrape still spreads out.
"""

from __future__ import annotations

from pydantic import Field

from ..framework import Candidate, SchedulingRequest
from ..params import Params

TYPE = "inflight-load-scorer"


class InflightLoadParams(Params):
    # Uncached prompt tokens that weigh as much as one in-flight request.
    tokens_per_request: int = Field(default=4096, gt=0)


class InflightLoadScorer:
    TYPE = TYPE
    Params = InflightLoadParams

    def __init__(self, params: InflightLoadParams | None = None) -> None:
        self.tokens_per_request = (params or InflightLoadParams()).tokens_per_request

    def score(self, request: SchedulingRequest, candidates: list[Candidate]) -> list[float]:
        # (maxL - L) / (maxL - minL) like the queue scorer; all equal -> 1.0.
        tpr = self.tokens_per_request
        loads = [c.inflight.requests + c.inflight.tokens / tpr for c in candidates]
        if not loads:
            return []
        lo, hi = min(loads), max(loads)
        if hi == lo:
            return [1.0] * len(loads)
        span = hi - lo
        return [(hi - x) / span for x in loads]
