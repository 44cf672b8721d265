"""Real-vLLM tier: two vLLM CPU servers (the tiny model, two LoRA adapters) started once per
session, the real picker and Envoy in front of them per test.

* ``roomy``: the default KV cache (1 GiB: 4096 blocks of 128 tokens).
* ``small``: ``--num-gpu-blocks-override 24`` (3072 tokens): real KV pressure with a few requests.

Both listen on the same port (an InferencePool has one target port) on two loopback addresses of
one /24: ``IGW_REAL_VLLM_NET`` (e.g. ``127.0.20``) picks it, else a free one is found. The
environment comes from ``.ci/setup-vllm``: without it the tier fails under ``CI=true`` and is
skipped otherwise, naming that command.
"""

from __future__ import annotations

import os
import random
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pytest

from .. import exposition
from .gateway import Gateway, start_gateway
from .server import START_TIMEOUT_S, ServerSpec, VllmServer, locate, missing_reason, start_all

SMALL_KV_BLOCKS = 24
_T0 = time.monotonic()
_timings: dict[str, float] = {}


def _bindable(hosts: list[str], port: int) -> bool:
    socks = []
    try:
        for h in hosts:
            s = socket.socket()
            socks.append(s)
            s.bind((h, port))
        return True
    except OSError:
        return False
    finally:
        for s in socks:
            s.close()


def pick_addresses() -> tuple[list[str], int]:
    """Two loopback addresses of one /24 and a port free on both."""
    nets = [os.environ["IGW_REAL_VLLM_NET"]] if os.environ.get("IGW_REAL_VLLM_NET") else \
        [f"127.0.{n}" for n in random.Random().sample(range(100, 250), 40)]
    rng = random.Random()
    for net in nets:
        hosts = [f"{net}.11", f"{net}.12"]
        for _ in range(20):
            port = rng.randrange(20000, 30000) if os.environ.get("IGW_REAL_VLLM_NET") else rng.randrange(30000, 60000)
            if _bindable(hosts, port):
                return hosts, port
    raise RuntimeError("no free loopback address pair / port for the vLLM servers")


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


@pytest.fixture(scope="session")
def servers(tmp_path_factory) -> Iterator[Servers]:
    reason = missing_reason(locate())
    if reason:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"real-vLLM tier under CI=true: {reason}", pytrace=False)
        pytest.skip(reason)
    (roomy_host, small_host), port = pick_addresses()
    logs = tmp_path_factory.mktemp("vllm-logs")
    t0 = time.monotonic()
    roomy, small = start_all([ServerSpec("roomy", roomy_host, port),
                              ServerSpec("small", small_host, port, num_gpu_blocks=SMALL_KV_BLOCKS)], logs)
    _timings["vllm start-up (both, in parallel)"] = time.monotonic() - t0
    raw = {s.spec.name: s.metrics() for s in (roomy, small)}
    try:
        yield Servers(roomy, small, {k: exposition.parse(v.decode()) for k, v in raw.items()}, raw)
    finally:
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


def pytest_collection_modifyitems(items) -> None:
    """The first test also waits for the servers' start-up (bounded by START_TIMEOUT_S itself)."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.timeout(START_TIMEOUT_S + 600))


def pytest_terminal_summary(terminalreporter) -> None:
    if not _timings:
        return
    terminalreporter.write_sep("-", "real vLLM tier timings")
    for what, seconds in _timings.items():
        terminalreporter.write_line(f"{what}: {seconds:.0f} s")
    terminalreporter.write_line(f"tier wall time since collection: {time.monotonic() - _T0:.0f} s")
