"""The single-request workloads: ShareGPT-like, bursts, LoRA mix, shared prefix."""

from __future__ import annotations

import random
from typing import Any

from .common import PlannedRequest, TextSource, arrivals, completion_body, sharegpt_lengths, zipf_weights


def lora_adapters(p: dict[str, Any]) -> tuple[list[str], list[float]]:
    """Adapter names and popularity: an explicit `adapters` list (+ `weights`), or
    `num_adapters` named adapter-00.. with Zipf(`zipf_s`) popularity."""
    if "adapters" in p:
        names = list(p["adapters"])
        return names, list(p.get("weights") or [1.0] * len(names))
    n = int(p["num_adapters"])
    return [f"adapter-{k:02d}" for k in range(n)], zipf_weights(n, float(p.get("zipf_s", 1.0)))


def sharegpt(rng: random.Random, text: TextSource, model: str, rate: float, duration: float,
             p: dict[str, Any], burst: bool = False) -> list[PlannedRequest]:
    times = arrivals(rng, rate, duration)
    if burst:
        every, size = float(p["burst_every_s"]), int(p["burst_size"])
        t = float(p.get("first_burst_s", every / 2))
        while t < duration:
            times.extend([t] * size)
            t += every
        times.sort()
    out = []
    for n, t in enumerate(times):
        i, o = sharegpt_lengths(rng, p)
        out.append(PlannedRequest(t, completion_body(model, text.text(i, f"r{n}"), o), i, o, model))
    return out


def lora(rng: random.Random, text: TextSource, rate: float, duration: float, p: dict[str, Any]) -> list[PlannedRequest]:
    adapters, weights = lora_adapters(p)
    out = []
    for n, t in enumerate(arrivals(rng, rate, duration)):
        i, o = sharegpt_lengths(rng, p)
        m = rng.choices(adapters, weights)[0]
        out.append(PlannedRequest(t, completion_body(m, text.text(i, f"r{n}"), o), i, o, m, meta={"adapter": m}))
    return out


def shared_prefix(rng: random.Random, text: TextSource, model: str, rate: float, duration: float,
                  p: dict[str, Any]) -> list[PlannedRequest]:
    """inference-perf `shared_prefix`: each request picks a (group, question) uniformly."""
    g_n, q_n = int(p["num_groups"]), int(p["num_prompts_per_group"])
    s_len, q_len, o_len = int(p["system_prompt_len"]), int(p["question_len"]), int(p["output_len"])
    systems = [text.text(s_len, f"system prompt of tenant {g}") for g in range(g_n)]
    questions = [[text.text(q_len, f"question {g}.{k}") for k in range(q_n)] for g in range(g_n)]
    out = []
    for t in arrivals(rng, rate, duration):
        g, k = rng.randrange(g_n), rng.randrange(q_n)
        out.append(PlannedRequest(t, completion_body(model, systems[g] + questions[g][k], o_len), s_len + q_len,
                                  o_len, model, group=g, prefix_tokens=s_len, meta={"question": k}))
    return out
