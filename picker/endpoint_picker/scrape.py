"""Metrics scraper: GET /metrics of every endpoint on a fixed tick, parse only what we use.

Each endpoint has its own task and keep-alive connection; decisions read the last snapshot
and never wait on a scrape. The parser searches the exposition text for the few series we need
with bytes.find (C speed) instead of parsing every line.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

from .datastore import Datastore, Metrics
from .http11 import HttpConnection, HttpError

log = logging.getLogger(__name__)

WAITING = b"vllm:num_requests_waiting"
RUNNING = b"vllm:num_requests_running"
KV = b"vllm:kv_cache_usage_perc"
KV_OLD = b"vllm:gpu_cache_usage_perc"
LORA = b"vllm:lora_requests_info"
CACHE_CONFIG = b"vllm:cache_config_info"


def _series(text: bytes, name: bytes) -> list[tuple[bytes, float]]:
    """All samples of `name` as (label block, value). Skips # HELP/# TYPE lines and suffixed names."""
    out = []
    n = len(name)
    pos = 0
    while True:
        i = text.find(name, pos)
        if i < 0:
            return out
        pos = i + n
        if i and text[i - 1] != 0x0A:  # must start a line
            continue
        nxt = text[pos : pos + 1]
        if nxt not in (b"{", b" "):
            continue  # a longer metric name sharing the prefix
        end = text.find(b"\n", pos)
        line = text[pos : end if end >= 0 else len(text)]
        labels = b""
        if line.startswith(b"{"):
            close = line.rfind(b"}")
            labels, line = line[1:close], line[close + 1 :]
        fields = line.split()
        if fields:
            try:
                out.append((labels, float(fields[0])))
            except ValueError:
                pass


def _labels(block: bytes) -> dict[str, str]:
    """Parse `a="x",b="y"` (values without escaped quotes, which is all vLLM emits here)."""
    out = {}
    for part in block.decode("utf-8", "replace").split('",'):
        k, sep, v = part.partition('="')
        if sep:
            out[k.strip().lstrip(",")] = v.rstrip('"')
    return out


def _adapters(value: str) -> frozenset[str]:
    return frozenset(a for a in (s.strip() for s in value.split(",")) if a)


def parse_metrics(text: bytes, into: Metrics | None = None) -> Metrics:
    """Update (or create) a Metrics snapshot from vLLM Prometheus text."""
    m = into if into is not None else Metrics()
    waiting = _series(text, WAITING)
    m.waiting = sum(v for _, v in waiting)
    m.running = sum(v for _, v in _series(text, RUNNING))
    kv = _series(text, KV) or _series(text, KV_OLD)
    m.kv_usage = max((v for _, v in kv), default=0.0)
    lora = _series(text, LORA)
    if lora:
        # The gauge's value is a timestamp: the newest series is the current adapter state.
        labels = _labels(max(lora, key=lambda s: s[1])[0])
        m.active_loras = _adapters(labels.get("running_lora_adapters", ""))
        m.waiting_loras = _adapters(labels.get("waiting_lora_adapters", ""))
        try:
            m.max_lora = int(float(labels.get("max_lora", "0") or 0))
        except ValueError:
            m.max_lora = 0
    cache = _series(text, CACHE_CONFIG)
    if cache:
        labels = _labels(cache[0][0])
        for attr, key in (("block_size", "block_size"), ("num_gpu_blocks", "num_gpu_blocks")):
            try:
                setattr(m, attr, int(float(labels.get(key, "0") or 0)))
            except ValueError:
                pass
    return m


class Scraper:
    """Keeps one scrape task per endpoint in the datastore, following endpoint changes."""

    def __init__(self, store: Datastore, *, interval_s: float, timeout_s: float, path: str,
                 on_error: Callable[[str], None] | None = None) -> None:
        self.store = store
        self.interval = interval_s
        self.timeout = timeout_s
        self.path = path
        self.on_error = on_error
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._generation = -1
        self._stopped = False

    def sync(self) -> None:
        """Start tasks for new endpoints, cancel tasks of removed ones."""
        if self._generation == self.store.generation:
            return
        self._generation = self.store.generation
        eps = self.store.endpoints
        for key in list(self._tasks):
            if key not in eps:
                self._tasks.pop(key).cancel()
        for key, ep in eps.items():
            if key not in self._tasks:
                self._tasks[key] = asyncio.create_task(self._loop(key, ep.address, ep.port), name=f"scrape {key}")

    async def run(self) -> None:
        while not self._stopped:
            self.sync()
            await asyncio.sleep(0.1)

    def stop(self) -> None:
        self._stopped = True
        for t in self._tasks.values():
            t.cancel()
        self._tasks.clear()

    async def _loop(self, key: str, host: str, port: int) -> None:
        conn = HttpConnection(host, port, timeout=self.timeout)
        req_headers = {"Accept": "text/plain"}
        interval = self.interval
        next_at = time.monotonic()
        try:
            while True:
                try:
                    status, _, body = await conn.request("GET", self.path, req_headers)
                    m = self.store.metrics.get(key)
                    if m is None:
                        return
                    if status == 200:
                        parse_metrics(body, m)
                        m.supported = True
                        m.updated_at = time.monotonic()
                    elif status == 404:
                        m.supported = False  # no engine metrics: schedule on in-flight load
                    else:
                        raise HttpError(f"HTTP {status}")
                except (OSError, HttpError, asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as e:
                    conn.close()
                    if self.on_error:
                        self.on_error(key)
                    log.debug("scrape %s failed: %s", key, e)
                next_at += interval
                delay = next_at - time.monotonic()
                if delay < 0:  # fell behind: skip missed ticks rather than bursting
                    next_at = time.monotonic()
                    delay = 0
                await asyncio.sleep(delay)
        finally:
            conn.close()
