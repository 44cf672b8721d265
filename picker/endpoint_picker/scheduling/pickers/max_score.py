"""max-score-picker: highest total score first; ties broken at random so bursts spread out."""

from __future__ import annotations

import random

from pydantic import Field

from ..framework import Candidate, SchedulingRequest
from ..params import Params

TYPE = "max-score-picker"


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
        r = self.rng.random
        keys = [(-round(s, 9), r()) for s in scores]  # rounding: float noise must not break ties
        order = sorted(range(len(candidates)), key=keys.__getitem__)
        return [candidates[i] for i in order[: self.max_endpoints]]
