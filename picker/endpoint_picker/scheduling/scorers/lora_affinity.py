"""lora-affinity-scorer: prefer endpoints that already hold the requested LoRA adapter."""

from __future__ import annotations

from ..framework import Candidate, SchedulingRequest
from ..params import NoParams

TYPE = "lora-affinity-scorer"


class LoraAffinityScorer:
    TYPE = TYPE
    Params = NoParams

    def __init__(self, params: NoParams | None = None) -> None:
        pass

    def score(self, request: SchedulingRequest, candidates: list[Candidate]) -> list[float]:
        model = request.target_model
        # A pool without LoRA (no candidate reports adapter slots or adapters) is neutral, and so
        # is a model no candidate knows as an adapter while some still have free slots: that is
        # the base model or an adapter not loaded anywhere yet, both handled by the 0.8 rule.
        if not any(c.metrics.max_lora or c.metrics.active_loras or c.metrics.waiting_loras for c in candidates):
            return [1.0] * len(candidates)
        out = []
        for c in candidates:
            m = c.metrics
            if model in m.active_loras:
                out.append(1.0)
            elif len(m.active_loras) + len(m.waiting_loras) < m.max_lora:
                out.append(0.8)
            elif model in m.waiting_loras:
                out.append(0.6)
            else:
                out.append(0.0)
        return out
