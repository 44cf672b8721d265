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
        in random order. Only candidates within 1e-9 of the k-th best raw score can be in the top k
        (rounding moves a score by at most 5e-10), so only those are sorted: O(n) instead of a
        random key and a sort over every endpoint; when they are all tied, a random sample."""
        k = self.max_endpoints
        pool = range(len(scores))
        if len(scores) > k:
            kth = scores[nlargest(k, pool, key=scores.__getitem__)[-1]]
            pool = [i for i, s in enumerate(scores) if s >= kth - _TIE]
            if len(pool) > k and max(scores) - kth <= _TIE:   # all tied (an idle pool): a random k
                return [candidates[i] for i in self.rng.sample(pool, k)]
        r = self.rng.random
        order = sorted(pool, key=lambda i: (-round(scores[i], 9), r()))
        return [candidates[i] for i in order[:k]]
