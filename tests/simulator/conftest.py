"""Fixtures: simulated vLLM replicas on loopback (127.0.1.x), embedded in a thread."""

from __future__ import annotations

import itertools
from typing import Callable, Iterator

import httpx
import pytest

from vllm_simulator import SimConfig, SimHandle, start_in_thread

MODEL = "meta-llama/Llama-3.1-8B-Instruct"
_hosts = itertools.count(10)


def next_host() -> str:
    n = next(_hosts)
    return f"127.0.{1 + n // 250}.{1 + n % 250}"


@pytest.fixture
def make_sim() -> Iterator[Callable[..., SimHandle]]:
    """``make_sim(**SimConfig fields)`` -> running replica; stopped at teardown."""
    handles: list[SimHandle] = []

    def make(**kw) -> SimHandle:
        kw.setdefault("host", next_host())
        kw.setdefault("port", 0)
        kw.setdefault("time_scale", 0.01)
        kw.setdefault("pod_name", f"sim-pod-{len(handles)}")
        h = start_in_thread(SimConfig(**kw))
        handles.append(h)
        return h

    yield make
    for h in handles:
        h.stop()


@pytest.fixture
def sim(make_sim) -> SimHandle:
    return make_sim(lora_modules=[("sql-lora", "/adapters/sql")], max_loras=2)


@pytest.fixture
def client(sim) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.url, timeout=10) as c:
        yield c


def parse_sse(text: str) -> list:
    """`data:` payloads of an SSE body, in order ('[DONE]' kept as a string)."""
    import json
    out = []
    for block in text.split("\n\n"):
        block = block.strip()
        if not block:
            continue
        assert block.startswith("data: "), block
        payload = block[len("data: "):]
        out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out
