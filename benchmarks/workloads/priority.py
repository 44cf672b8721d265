"""Mixed priorities under overload: ShareGPT-like lengths, each request in one class.

`classes`: list of `{objective, priority, share}`; a request of a class carries the header
`x-gateway-inference-objective: <objective>` and the pool has an InferenceObjective of that name
with that priority (negative = sheddable: the picker answers 429 when the pool is saturated).
The rate is set above the pool's capacity, so shedding is what keeps the others' latency.
"""

from __future__ import annotations

import random
from typing import Any

from .common import PlannedRequest, TextSource, arrivals, completion_body, sharegpt_lengths


def objectives(p: dict[str, Any]) -> list[dict[str, Any]]:
    """The InferenceObjectives the pool needs for this workload: [{name, priority}]."""
    return [{"name": c["objective"], "priority": int(c["priority"])} for c in p["classes"]]


def priority_mix(rng: random.Random, text: TextSource, model: str, rate: float, duration: float,
                 p: dict[str, Any]) -> list[PlannedRequest]:
    classes = p["classes"]
    shares = [float(c["share"]) for c in classes]
    out = []
    for n, t in enumerate(arrivals(rng, rate, duration)):
        c = rng.choices(classes, shares)[0]
        i, o = sharegpt_lengths(rng, p)
        out.append(PlannedRequest(t, completion_body(model, text.text(i, f"r{n}"), o), i, o, model,
                                  meta={"objective": c["objective"], "priority": int(c["priority"])}))
    return out
