"""Requests held in flight on a real vLLM server, and polling its /metrics until a state shows."""

from __future__ import annotations

import threading
import time
from typing import Callable

import httpx

from .. import exposition
from .server import VllmServer


ONE_SHOT = {"connection": "close"}
"""Every held request on a connection of its own: reusing a kept-alive connection the moment a
stream ended, vLLM's server (uvicorn) sometimes closed it first ('Server disconnected without
sending a response'; 2 of 6 holders lost in 60 s here)."""


class Streams:
    """Streamed completions, each in a thread, in flight until they finish or stop() cuts them
    (closing the connection makes vLLM abort the request).

    The tiny model decodes ~450 tokens/s on an idle core, so one request holds a state for about
    two seconds: fewer than the probes of a test need (they took 4-7 min under load, which hid
    this). `keep` holds a state for as long as the test runs: each of its streams starts again as
    soon as it ends."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client = httpx.Client(timeout=300)
        self.threads: list[threading.Thread] = []
        self.errors: list[str] = []
        self._stop = threading.Event()

    def start(self, model: str, prompt: str, max_tokens: int) -> "Streams":
        """One request, in flight until it ends or stop()."""
        return self._spawn(model, prompt, max_tokens, repeat=False)

    def keep(self, model: str, prompt: str, max_tokens: int, count: int = 1) -> "Streams":
        """`count` requests in flight until stop(), each started again as soon as it ends (for a
        moment while it restarts it is not in flight: tests read the state around each probe)."""
        for _ in range(count):
            self._spawn(model, prompt, max_tokens, repeat=True)
        return self

    def _spawn(self, model: str, prompt: str, max_tokens: int, repeat: bool) -> "Streams":
        body = {"model": model, "prompt": prompt, "max_tokens": max_tokens, "ignore_eos": True, "stream": True}

        def once() -> bool:
            """One stream; False when it failed or stop() cut it."""
            try:
                with self.client.stream("POST", self.url + "/v1/completions", json=body, headers=ONE_SHOT) as r:
                    if r.status_code != 200:
                        self.errors.append(f"{model}: HTTP {r.status_code} {r.read()[:300]!r}")
                        return False
                    for _ in r.iter_bytes():
                        if self._stop.is_set():
                            return False
                return True
            except Exception as e:  # noqa: BLE001 - stop() closing the client mid-request raises what httpx raises
                if not self._stop.is_set():
                    self.errors.append(f"{model}: {e!r}")
                return False

        def run() -> None:
            while once() and repeat and not self._stop.is_set():
                pass

        t = threading.Thread(target=run, daemon=True)
        t.start()
        self.threads.append(t)
        return self

    def join(self, timeout_s: float) -> None:
        """Wait for every stream to finish by itself; raise on a timeout or a failed request."""
        deadline = time.monotonic() + timeout_s
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))
        alive = sum(t.is_alive() for t in self.threads)
        self.stop()
        if alive:
            raise TimeoutError(f"{alive} streams still running after {timeout_s} s")
        if self.errors:
            raise RuntimeError("; ".join(self.errors))

    def stop(self) -> None:
        """Cut every request (closing the connections makes vLLM abort them) and wait for the threads."""
        self._stop.set()
        self.client.close()
        for t in self.threads:
            t.join(30)


def page(server: VllmServer) -> dict[str, exposition.Family]:
    return exposition.parse(server.metrics().decode())


def gauge(fams: dict[str, exposition.Family], name: str) -> float:
    return sum(s.value for s in exposition.values(fams, name))


def lora_lists(fams: dict[str, exposition.Family]) -> tuple[frozenset[str], frozenset[str], int] | None:
    """(running, waiting, max_lora) of the newest lora_requests_info series; None before its first sample."""
    newest = exposition.newest_lora(fams)
    if newest is None:
        return None
    split = lambda v: frozenset(filter(None, v.split(",")))  # noqa: E731
    return (split(newest.labels["running_lora_adapters"]), split(newest.labels["waiting_lora_adapters"]),
            int(newest.labels["max_lora"]))


def wait_pages(servers: list[VllmServer], what: str, ok: Callable[[list[dict[str, exposition.Family]]], bool],
               timeout_s: float = 120, poll_s: float = 0.05) -> list[dict[str, exposition.Family]]:
    """Poll every server's /metrics until `ok(pages)`; raise naming `what` and the last state."""
    return [exposition.parse(r.decode()) for r in wait_raw_pages(servers, what, ok, timeout_s, poll_s)]


def wait_raw_pages(servers: list[VllmServer], what: str, ok: Callable[[list[dict[str, exposition.Family]]], bool],
                   timeout_s: float = 120, poll_s: float = 0.05) -> list[bytes]:
    """wait_pages, returning the pages' exact bytes."""
    deadline = time.monotonic() + timeout_s
    while True:
        raw = [s.metrics() for s in servers]
        pages = [exposition.parse(r.decode()) for r in raw]
        if ok(pages):
            return raw
        if time.monotonic() > deadline:
            state = {s.spec.name: (gauge(p, "vllm:num_requests_running"), gauge(p, "vllm:num_requests_waiting"),
                                   lora_lists(p)) for s, p in zip(servers, pages)}
            raise TimeoutError(f"{what}: not reached within {timeout_s} s; (running, waiting, lora) = {state}")
        time.sleep(poll_s)


def wait_idle(servers: list[VllmServer], timeout_s: float = 120) -> list[dict[str, exposition.Family]]:
    return wait_pages(servers, "servers idle", lambda ps: all(
        gauge(p, "vllm:num_requests_running") == 0 and gauge(p, "vllm:num_requests_waiting") == 0 for p in ps), timeout_s)
