"""Request plans for the benchmarks (all synthetic, seeded, no dataset downloads).

Prompt text is ASCII, so the simulator's tokenizer (4 UTF-8 bytes = 1 token) and the picker's
approximate prefix hashing both see exactly `tokens * 4` bytes. Every prompt that must not share
a prefix starts with a unique tag. Parameters come from a scenario's `workload.params`.

* `sharegpt` - ShareGPT-like length mix. Input and output token counts are drawn from
  log-normal distributions fitted to the summary statistics commonly quoted for
  ShareGPT_V3_unfiltered_cleaned_split (input median ~ 110, mean ~ 220 tokens; output median
  ~ 150, mean ~ 200), clipped to [min, max]. Defaults: input mu=ln(110), sigma=1.1, clip
  [4, 2048]; output mu=ln(150), sigma=0.8, clip [8, 512]; `output_scale` shrinks outputs.
* `shared_prefix` - inference-perf `shared_prefix` shape (basic.py).
* `lora` - sharegpt-like lengths, the model drawn from LoRA adapters by popularity (basic.py).
* `burst` - sharegpt-like lengths; Poisson plus `burst_size` simultaneous requests every
  `burst_every_s`.
* `long_context` - questions about 50-100k-token documents (long_context.py).
* `priority_mix` - classes of InferenceObjective priority, run above capacity (priority.py).
* `multi_turn` - chat conversations with growing history (multi_turn.py; virtual time only).

Arrivals are open-loop Poisson at `rate` requests per *simulated* second, i.e. `rate /
time_scale` per real second (see the README: time scale).
"""

from __future__ import annotations

import random
from typing import Any

from .basic import lora, lora_adapters, shared_prefix, sharegpt
from .common import CHAT, COMPLETIONS, PlannedRequest, TextSource, sharegpt_lengths
from .long_context import long_context
from .multi_turn import multi_turn
from .priority import objectives, priority_mix

WORKLOAD_TYPES = ("sharegpt", "shared_prefix", "lora", "burst", "long_context", "priority_mix", "multi_turn")
# Workloads whose later requests depend on earlier answers: the real-socket runner cannot play them.
VIRTUAL_ONLY = ("multi_turn",)

__all__ = ["CHAT", "COMPLETIONS", "PlannedRequest", "TextSource", "WORKLOAD_TYPES", "VIRTUAL_ONLY", "plan",
           "kv_demand", "lora_adapters", "objectives_for", "sharegpt_lengths"]


def plan(workload: dict[str, Any], model: str, time_scale: float) -> list[PlannedRequest]:
    kind = workload["type"]
    p = workload.get("params") or {}
    seed = int(workload.get("seed", 1))
    rng = random.Random(seed)
    text = TextSource(seed + 1000)
    rate = float(workload["rate"]) / time_scale
    duration = float(workload["duration_s"])
    if kind == "sharegpt" or kind == "burst":
        out = sharegpt(rng, text, model, rate, duration, p, burst=kind == "burst")
    elif kind == "lora":
        out = lora(rng, text, rate, duration, p)
    elif kind == "shared_prefix":
        out = shared_prefix(rng, text, model, rate, duration, p)
    elif kind == "long_context":
        out = long_context(rng, text, model, rate, duration, p)
    elif kind == "priority_mix":
        out = priority_mix(rng, text, model, rate, duration, p)
    elif kind == "multi_turn":
        out = multi_turn(rng, text, model, rate, duration, p)
    else:
        raise ValueError(f"unknown workload type {kind!r} (known: {', '.join(WORKLOAD_TYPES)})")
    for n, pr in enumerate(out):
        pr.request_id = f"{seed}-{n}"
    return out


def objectives_for(workload: dict[str, Any]) -> list[dict[str, Any]]:
    """InferenceObjectives ({name, priority}) the pool needs for this workload."""
    return objectives(workload["params"]) if workload["type"] == "priority_mix" else []


def kv_demand(workload: dict[str, Any]) -> int | None:
    """Tokens of KV cache the shared prefixes need (shared_prefix only)."""
    if workload["type"] != "shared_prefix":
        return None
    p = workload["params"]
    return int(p["num_groups"]) * int(p["system_prompt_len"])
