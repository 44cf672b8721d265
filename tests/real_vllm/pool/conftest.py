"""Two vLLM CPU servers (the tiny model, two LoRA adapters), started once for this package and
stopped when it is done, behind the real picker and Envoy built per test:

* ``roomy``: the default KV cache (1 GiB: 4096 blocks of 128 tokens);
* ``small``: ``--num-gpu-blocks-override 24`` (3072 tokens): real KV pressure with a few requests.

Both listen on the same port (an InferencePool has one target port) on two loopback addresses.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pytest

from ... import exposition
from ..conftest import TIMINGS, pick_addresses
from ..server import ServerSpec, VllmServer, start_all
from .gateway import Gateway, start_gateway

SMALL_KV_BLOCKS = 24


@dataclass
class Servers:
    roomy: VllmServer
    small: VllmServer
    start_pages: dict[str, dict[str, exposition.Family]]
    """Each server's /metrics right after start, before any request (name -> parsed page)."""
    start_raw: dict[str, bytes]

    @property
    def all(self) -> list[VllmServer]:
        return [self.roomy, self.small]


@pytest.fixture(scope="package")
def servers(vllm_env, tmp_path_factory) -> Iterator[Servers]:
    (roomy_host, small_host), port = pick_addresses()
    logs = tmp_path_factory.mktemp("vllm-logs")
    t0 = time.monotonic()
    roomy, small = start_all([ServerSpec("roomy", roomy_host, port),
                              ServerSpec("small", small_host, port, num_gpu_blocks=SMALL_KV_BLOCKS)], logs)
    TIMINGS["pool: vLLM start-up (two servers, in parallel)"] = time.monotonic() - t0
    raw = {s.spec.name: s.metrics() for s in (roomy, small)}
    t1 = time.monotonic()
    try:
        yield Servers(roomy, small, {k: exposition.parse(v.decode()) for k, v in raw.items()}, raw)
    finally:
        TIMINGS["pool: tests against the running servers"] = time.monotonic() - t1
        for s in (roomy, small):
            s.stop()


@pytest.fixture
def gateway(servers: Servers, tmp_path: Path) -> Iterator[Callable[..., Gateway]]:
    """``gateway(scorers=[...])`` -> Envoy + picker over both servers; closed after the test."""
    made: list[Gateway] = []

    def make(**kw) -> Gateway:
        g = start_gateway(servers.all, tmp_path / f"gw{len(made)}", **kw)
        made.append(g)
        return g

    yield make
    for g in made:
        g.close()
