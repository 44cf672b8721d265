"""weighted-random-picker: sample without replacement, probability proportional to score.

A-Res (Efraimidis–Spirakis): key_i = U^(1/w_i), take the largest keys. Avoids hot-spotting when
many requests see the same scores.
"""

from __future__ import annotations

import random

from pydantic import Field

from ..framework import Candidate, SchedulingRequest
from ..params import Params

TYPE = "weighted-random-picker"
_MIN_WEIGHT = 1e-6  # zero-score endpoints stay last-resort fallbacks instead of vanishing


class WeightedRandomParams(Params):
    max_endpoints: int = Field(default=3, ge=1)


class WeightedRandomPicker:
    TYPE = TYPE
    Params = WeightedRandomParams

    def __init__(self, params: WeightedRandomParams | None = None, rng: random.Random | None = None) -> None:
        self.max_endpoints = (params or WeightedRandomParams()).max_endpoints
        self.rng = rng or random.Random()

    def pick(self, request: SchedulingRequest, candidates: list[Candidate], scores: list[float]) -> list[Candidate]:
        r = self.rng.random
        keys = [r() ** (1.0 / max(s, _MIN_WEIGHT)) for s in scores]
        order = sorted(range(len(candidates)), key=lambda i: -keys[i])
        return [candidates[i] for i in order[: self.max_endpoints]]
