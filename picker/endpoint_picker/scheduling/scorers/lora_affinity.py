"""lora-affinity-scorer: prefer endpoints that already hold the requested LoRA adapter.

The reference scorer's ladder (1.0 / 0.8 / 0.6 / 0.0) over vLLM's `lora_requests_info` as real
vLLM fills it (scrape.parse_lora): an adapter counts as loaded when it is in the running list;
the slots in use are the *union* of the running and waiting lists (vLLM puts an in-flight adapter
in both, so adding the two lists up would count it twice and see a full endpoint where one slot is
free); an adapter that is only waiting is queued, not loaded; an endpoint whose family has no
sample yet has served nothing and has every slot free.
"""

from __future__ import annotations

from ...datastore import Metrics
from ..framework import Candidate, SchedulingRequest
from ..params import NoParams

TYPE = "lora-affinity-scorer"

LOADED = 1.0
FREE_SLOT = 0.8
QUEUED = 0.6
NO_SLOT = 0.0


def has_free_slot(m: Metrics) -> bool:
    in_use = len(m.active_loras | m.waiting_loras)
    if m.max_lora <= 0:
        return m.lora_enabled and in_use == 0  # declared, no sample yet: nothing in flight
    return in_use < m.max_lora


def lora_score(model: str, m: Metrics) -> float:
    if model in m.active_loras:
        return LOADED
    if has_free_slot(m):
        return FREE_SLOT
    if model in m.waiting_loras:
        return QUEUED
    return NO_SLOT


class LoraAffinityScorer:
    TYPE = TYPE
    Params = NoParams

    def __init__(self, params: NoParams | None = None) -> None:
        pass

    def score(self, request: SchedulingRequest, candidates: list[Candidate]) -> list[float]:
        # A pool without LoRA (no candidate declares the family or reports adapters) is neutral.
        # The base model and an adapter loaded nowhere go by the free-slot rule like any other.
        if not any(c.metrics.lora_enabled or c.metrics.max_lora or c.metrics.active_loras or c.metrics.waiting_loras
                   for c in candidates):
            return [1.0] * len(candidates)
        model = request.target_model
        return [lora_score(model, c.metrics) for c in candidates]
