"""max-score-picker: highest total score first; ties broken at random so bursts spread out."""

from __future__ import annotations

import random
from heapq import nlargest

from pydantic import Field

from ..framework import Candidate, SchedulingRequest
from ..params import Params

TYPE = "max-score-picker"
_TIE = 1e-9


class MaxScoreParams(Params):
    # Primary plus fallbacks returned to the gateway.
    max_endpoints: int = Field(default=3, ge=1)


class MaxScorePicker:
    TYPE = TYPE
    Params = MaxScoreParams

    def __init__(self, params: MaxScoreParams | None = None, rng: random.Random | None = None) -> None:
        self.max_endpoints = (params or MaxScoreParams()).max_endpoints
        self.rng = rng or random.Random()

    def pick(self, request: SchedulingRequest, candidates: list[Candidate], scores: list[float]) -> list[Candidate]:
        """The top `max_endpoints` by score rounded to 1e-9 (float noise must not break ties), ties
        in random order. Scores more than 1e-9 above the k-th best are sorted (fewer than k of
        them); the rest of the top k is a random sample of the candidates tied with the k-th best
        (within 1e-9, what rounding cannot tell apart): O(n), no random key per endpoint."""
        k = self.max_endpoints
        r = self.rng.random
        if len(scores) <= k:
            order = sorted(range(len(scores)), key=lambda i: (-round(scores[i], 9), r()))
            return [candidates[i] for i in order]
        kth = scores[nlargest(k, range(len(scores)), key=scores.__getitem__)[-1]]
        hi, lo = kth + _TIE, kth - _TIE
        above = [i for i, s in enumerate(scores) if s > hi]
        tied = [i for i, s in enumerate(scores) if lo <= s <= hi]
        order = sorted(above, key=lambda i: (-round(scores[i], 9), r())) if len(above) > 1 else above
        return [candidates[i] for i in order + self.rng.sample(tied, k - len(above))]
