"""Pieces every workload uses: the planned request, filler text, length and arrival draws."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any, Callable

import orjson

_WORDS = ("the quick brown fox jumps over a lazy dog while seven wizards quietly hex bold "
          "jovial kings and zebras graze near misty hills under amber skies ").split()
COMPLETIONS = "/v1/completions"
CHAT = "/v1/chat/completions"


@dataclass
class PlannedRequest:
    t: float                   # seconds after the run starts (real seconds / time scale = simulated)
    body: bytes
    prompt_tokens: int
    max_tokens: int
    model: str
    group: int = -1            # shared-prefix group, document or conversation (-1 = none); the oracle uses it
    prefix_tokens: int = 0     # tokens of the shared prefix (oracle)
    meta: dict[str, Any] = field(default_factory=dict)
    path: str = COMPLETIONS
    request_id: str = ""
    # Multi-turn: called with the answer's text when this request completes; returns the next
    # turn (its `t` is the think time after the answer) or None when the conversation ends.
    followup: Callable[[str], "PlannedRequest | None"] | None = None


_BASES: dict[int, str] = {}   # filler per seed, built once per process (~1.2 MB each)


class TextSource:
    """Deterministic filler text; `text(n_tokens, tag)` returns exactly 4*n bytes of ASCII."""

    def __init__(self, seed: int) -> None:
        base = _BASES.get(seed)
        if base is None:
            base = _BASES[seed] = " ".join(random.Random(seed).choices(_WORDS, k=200_000))
        self.base = base
        self.rng = random.Random(seed * 7919 + 1)

    def text(self, n_tokens: int, tag: str = "", rng: random.Random | None = None) -> str:
        """`rng` picks where in the filler the text starts (default: this source's own)."""
        n = max(1, n_tokens) * 4
        head = f"[{tag}] " if tag else ""
        need = n - len(head)
        if need <= 0:
            return head[:n]
        start = (rng or self.rng).randrange(0, len(self.base) - need - 1) if need < len(self.base) - 1 else 0
        body = self.base[start:start + need]
        while len(body) < need:
            body += self.base[:need - len(body)]
        return head + body


def lognormal_int(rng: random.Random, median: float, sigma: float, lo: int, hi: int) -> int:
    v = int(round(rng.lognormvariate(math.log(median), sigma)))
    return max(lo, min(hi, v))


def arrivals(rng: random.Random, rate: float, duration_s: float) -> list[float]:
    """Poisson arrival times in [0, duration_s)."""
    out, t = [], 0.0
    if rate <= 0:
        return out
    while True:
        t += rng.expovariate(rate)
        if t >= duration_s:
            return out
        out.append(t)


def zipf_weights(n: int, s: float) -> list[float]:
    return [1.0 / (k + 1) ** s for k in range(n)]


def completion_body(model: str, prompt: str, max_tokens: int, ignore_eos: bool = True) -> bytes:
    return orjson.dumps({"model": model, "prompt": prompt, "max_tokens": max_tokens, "stream": True,
                         "ignore_eos": ignore_eos, "stream_options": {"include_usage": True}})


def chat_body(model: str, messages: list[dict[str, str]], max_tokens: int) -> bytes:
    return orjson.dumps({"model": model, "messages": messages, "max_tokens": max_tokens, "stream": True,
                         "ignore_eos": True, "stream_options": {"include_usage": True}})


def sharegpt_lengths(rng: random.Random, p: dict[str, Any]) -> tuple[int, int]:
    """ShareGPT-like (input, output) token counts: log-normal, clipped, outputs scaled."""
    i = lognormal_int(rng, p.get("input_median", 110), p.get("input_sigma", 1.1),
                      p.get("input_min", 4), p.get("input_max", 2048))
    o = lognormal_int(rng, p.get("output_median", 150), p.get("output_sigma", 0.8),
                      p.get("output_min", 8), p.get("output_max", 512))
    return i, max(1, int(round(o * p.get("output_scale", 1.0))))
