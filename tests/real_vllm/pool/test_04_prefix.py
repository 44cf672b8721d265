"""Prefix affinity, confirmed by real vLLM's own counters.

Two prompts share a long prefix (new to both servers). Through a picker scoring prefix affinity
only, the second must reach the server the first went to, and that server's
`vllm:prefix_cache_hits_total` must grow by exactly the shared full KV blocks (128 tokens each,
counted with vLLM's own tokenizer via /tokenize) while the other server's stays put.
"""

from __future__ import annotations

import uuid

import httpx

from ..load import gauge, page, wait_idle

BLOCK = 128
WORDS = ("gateway picker endpoint pool replica adapter cache prefix queue token model server request "
         "latency block layer route traffic health metric label scrape interval").split()


def long_prefix(seed: int, words: int = 420) -> str:
    """A prompt prefix no earlier request sent (a fresh tag first), ~420 tokens of the tiny tokenizer."""
    body = " ".join(WORDS[(seed * 7 + i * 3) % len(WORDS)] for i in range(words))
    return f"session {uuid.uuid4().hex} {body}"


def token_ids(server_url: str, prompt: str) -> list[int]:
    r = httpx.post(server_url + "/tokenize", json={"model": "tiny", "prompt": prompt}, timeout=30)
    r.raise_for_status()
    return r.json()["tokens"]


def shared_tokens(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def hits(servers) -> dict[str, float]:
    return {s.key: gauge(page(s), "vllm:prefix_cache_hits_total") for s in servers.all}


def test_second_request_follows_the_cached_prefix(servers, gateway):
    gw = gateway(scorers=[{"type": "prefix-cache-scorer", "weight": 1}])
    wait_idle(servers.all)
    for seed in range(3):
        prefix = long_prefix(seed)
        first_prompt, second_prompt = prefix + " first question here", prefix + " and now a second one"
        common = shared_tokens(token_ids(servers.roomy.url, first_prompt), token_ids(servers.roomy.url, second_prompt))
        assert common >= 3 * BLOCK, f"prefix too short for the test: {common} shared tokens"
        h0 = hits(servers)
        r1 = gw.post("/v1/completions", {"model": "tiny", "prompt": first_prompt, "max_tokens": 1})
        assert r1.status_code == 200, r1.text
        h1 = hits(servers)
        assert h1 == h0, "a prefix no server has seen produced cache hits"
        r2 = gw.post("/v1/completions", {"model": "tiny", "prompt": second_prompt, "max_tokens": 1})
        assert r2.status_code == 200, r2.text
        first, second = gw.served(r1), gw.served(r2)
        assert second == first, f"prefix {seed}: second request went to {second}, the prefix is cached on {first}"
        h2 = hits(servers)
        assert h2[first] - h1[first] == (common // BLOCK) * BLOCK, (common, h1, h2)
        other = next(k for k in h2 if k != first)
        assert h2[other] == h1[other]
