"""Request schedules for the quality scenarios (all synthetic, seeded, no dataset downloads).

Prompt text is ASCII, so the simulator's tokenizer (4 UTF-8 bytes = 1 token) and the picker's
approximate prefix hashing both see exactly `tokens * 4` bytes. Every prompt that must not share
a prefix starts with a unique request id.

Workload types (parameters in the scenario YAML, `workload.params`):

* `sharegpt` - ShareGPT-like length mix. Input and output token counts are drawn from
  log-normal distributions fitted to the summary statistics commonly quoted for
  ShareGPT_V3_unfiltered_cleaned_split (input median ~ 110, mean ~ 220 tokens; output median
  ~ 150, mean ~ 200), clipped to [min, max]. Defaults: input mu=ln(110), sigma=1.1, clip
  [4, 2048]; output mu=ln(150), sigma=0.8, clip [8, 512]; `output_scale` shrinks outputs
  uniformly to fit a time budget (documented in the results).
* `shared_prefix` - inference-perf `shared_prefix` shape: `num_groups` groups, each with one
  system prompt of `system_prompt_len` tokens and `num_prompts_per_group` distinct questions of
  `question_len` tokens; every request picks a (group, question) uniformly; output
  `output_len` tokens (ignore_eos).
* `lora` - sharegpt-like lengths, `model` drawn from `adapters` with `weights`.
* `burst` - sharegpt-like lengths; a base Poisson rate plus `burst_size` requests arriving at
  once every `burst_every_s` (real seconds).

Arrivals are open-loop Poisson at `rate` requests per *simulated* second, i.e. `rate /
time_scale` per real second (see README: time scale).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

import orjson

_WORDS = ("the quick brown fox jumps over a lazy dog while seven wizards quietly hex bold "
          "jovial kings and zebras graze near misty hills under amber skies ").split()


@dataclass
class PlannedRequest:
    t: float                   # real seconds after the run starts
    body: bytes
    prompt_tokens: int
    max_tokens: int
    model: str
    group: int = -1            # shared-prefix group (-1 = none); the oracle uses it
    prefix_tokens: int = 0     # tokens of the shared prefix (oracle)
    meta: dict[str, Any] = field(default_factory=dict)


class TextSource:
    """Deterministic filler text; `text(n_tokens, tag)` returns exactly 4*n bytes of ASCII."""

    def __init__(self, seed: int) -> None:
        rng = random.Random(seed)
        self.base = " ".join(rng.choice(_WORDS) for _ in range(200_000))
        self.rng = rng

    def text(self, n_tokens: int, tag: str = "") -> str:
        n = max(1, n_tokens) * 4
        head = f"[{tag}] " if tag else ""
        need = n - len(head)
        if need <= 0:
            return head[:n]
        start = self.rng.randrange(0, len(self.base) - need - 1) if need < len(self.base) - 1 else 0
        body = self.base[start:start + need]
        while len(body) < need:
            body += self.base[:need - len(body)]
        return head + body


def _lognormal_int(rng: random.Random, median: float, sigma: float, lo: int, hi: int) -> int:
    v = int(round(rng.lognormvariate(math.log(median), sigma)))
    return max(lo, min(hi, v))


def _arrivals(rng: random.Random, rate_real: float, duration_s: float) -> list[float]:
    out, t = [], 0.0
    if rate_real <= 0:
        return out
    while True:
        t += rng.expovariate(rate_real)
        if t >= duration_s:
            return out
        out.append(t)


def _body(model: str, prompt: str, max_tokens: int, ignore_eos: bool = True) -> bytes:
    return orjson.dumps({"model": model, "prompt": prompt, "max_tokens": max_tokens, "stream": True,
                         "ignore_eos": ignore_eos, "stream_options": {"include_usage": True}})


def sharegpt_lengths(rng: random.Random, p: dict[str, Any]) -> tuple[int, int]:
    i = _lognormal_int(rng, p.get("input_median", 110), p.get("input_sigma", 1.1),
                       p.get("input_min", 4), p.get("input_max", 2048))
    o = _lognormal_int(rng, p.get("output_median", 150), p.get("output_sigma", 0.8),
                       p.get("output_min", 8), p.get("output_max", 512))
    o = max(1, int(round(o * p.get("output_scale", 1.0))))
    return i, o


def plan(workload: dict[str, Any], model: str, time_scale: float) -> list[PlannedRequest]:
    kind = workload["type"]
    p = workload.get("params") or {}
    seed = int(workload.get("seed", 1))
    rng = random.Random(seed)
    text = TextSource(seed + 1000)
    rate_real = float(workload["rate"]) / time_scale
    duration = float(workload["duration_s"])
    out: list[PlannedRequest] = []
    if kind == "sharegpt" or kind == "burst":
        times = _arrivals(rng, rate_real, duration)
        if kind == "burst":
            every, size = float(p["burst_every_s"]), int(p["burst_size"])
            t = float(p.get("first_burst_s", every / 2))
            while t < duration:
                times.extend([t] * size)
                t += every
            times.sort()
        for n, t in enumerate(times):
            i, o = sharegpt_lengths(rng, p)
            prompt = text.text(i, f"r{n}")
            out.append(PlannedRequest(t, _body(model, prompt, o), i, o, model))
    elif kind == "lora":
        adapters = list(p["adapters"])
        weights = list(p.get("weights") or [1.0] * len(adapters))
        for n, t in enumerate(_arrivals(rng, rate_real, duration)):
            i, o = sharegpt_lengths(rng, p)
            m = rng.choices(adapters, weights)[0]
            out.append(PlannedRequest(t, _body(m, text.text(i, f"r{n}"), o), i, o, m, meta={"adapter": m}))
    elif kind == "shared_prefix":
        g_n, q_n = int(p["num_groups"]), int(p["num_prompts_per_group"])
        s_len, q_len, o_len = int(p["system_prompt_len"]), int(p["question_len"]), int(p["output_len"])
        systems = [text.text(s_len, f"system prompt of tenant {g}") for g in range(g_n)]
        questions = [[text.text(q_len, f"question {g}.{k}") for k in range(q_n)] for g in range(g_n)]
        for t in _arrivals(rng, rate_real, duration):
            g, k = rng.randrange(g_n), rng.randrange(q_n)
            prompt = systems[g] + questions[g][k]
            out.append(PlannedRequest(t, _body(model, prompt, o_len), s_len + q_len, o_len, model,
                                      group=g, prefix_tokens=s_len, meta={"question": k}))
    else:
        raise ValueError(f"unknown workload type {kind!r}")
    return out


def kv_demand(workload: dict[str, Any]) -> int | None:
    """Tokens of KV cache the shared prefixes need (shared_prefix only)."""
    if workload["type"] != "shared_prefix":
        return None
    p = workload["params"]
    return int(p["num_groups"]) * int(p["system_prompt_len"])
