"""Metrics scraper: GET /metrics of every endpoint on a fixed tick, parse only what we use.

Each endpoint has its own task and keep-alive connection; decisions read the last snapshot
and never wait on a scrape. The parser searches the exposition text for the few series we need
with bytes.find (C speed) instead of parsing every line.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Callable

from .datastore import Datastore, Metrics
from .http11 import HttpConnection, HttpError

log = logging.getLogger(__name__)

# The series the scheduler reads, by their vLLM names (vLLM 0.19-0.32; the simulator exposes the
# same). Everything else on the ~55 KB page is skipped without being parsed.
WAITING = b"vllm:num_requests_waiting"  # not vllm:num_requests_waiting_by_reason (same prefix)
RUNNING = b"vllm:num_requests_running"
KV = b"vllm:kv_cache_usage_perc"
KV_OLD = b"vllm:gpu_cache_usage_perc"  # vLLM before v0.10; read only when KV is absent
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
                value = float(fields[0])
            except ValueError:
                continue
            # Every series we read is a count, a fraction or a timestamp: NaN, infinities and
            # negatives are a broken (or hostile) server and would skew scores and saturation.
            if math.isfinite(value) and value >= 0:
                out.append((labels, value))


def _declared(text: bytes, name: bytes) -> bool:
    """The family is on the page (its # TYPE line), whether or not it has a sample yet."""
    return b"# TYPE " + name + b" " in text


_ESCAPES = {"n": "\n", "\\": "\\", '"': '"'}


def _labels(block: bytes) -> dict[str, str]:
    """Parse a label block `a="x",b="y"` with the exposition format's escapes (\\\\, \\", \\n)."""
    text = block.decode("utf-8", "replace")
    out: dict[str, str] = {}
    i, n = 0, len(text)
    while i < n:
        eq = text.find("=", i)
        if eq < 0 or eq + 1 >= n or text[eq + 1] != '"':
            break
        key = text[i:eq].strip().lstrip(",").strip()
        j, value = eq + 2, []
        while j < n and text[j] != '"':
            if text[j] == "\\" and j + 1 < n:
                value.append(_ESCAPES.get(text[j + 1], "\\" + text[j + 1]))
                j += 2
            else:
                value.append(text[j])
                j += 1
        out[key] = "".join(value)
        i = j + 1
    return out


def _adapters(value: str) -> frozenset[str]:
    return frozenset(a for a in (s.strip() for s in value.split(",")) if a)


def _int_label(labels: dict[str, str], key: str) -> int:
    try:
        value = float(labels.get(key) or 0)
    except ValueError:
        return 0
    return int(value) if math.isfinite(value) and value >= 0 else 0


def parse_lora(text: bytes, m: Metrics) -> None:
    """`vllm:lora_requests_info` as real vLLM sets it (0.19-0.32, v1 engine).

    The gauge's value is the wall-clock time it was last set, once per engine step, and every label
    combination ever set stays on the page (in whatever adapter order it had): the series with the
    newest value is the current state. vLLM writes each adapter that has any request in flight into
    *both* label lists (running and waiting), so the lists are read as sets, never added up; the
    slots in use are their union. The family has no sample until the first request: LoRA is on
    (the family is declared), nothing is in flight, every slot is free.
    """
    samples = _series(text, LORA)
    m.lora_enabled = bool(samples) or _declared(text, LORA)
    if not samples:
        m.active_loras = m.waiting_loras = frozenset()
        m.max_lora = 0
        return
    labels = _labels(max(samples, key=lambda s: s[1])[0])
    m.active_loras = _adapters(labels.get("running_lora_adapters", ""))
    m.waiting_loras = _adapters(labels.get("waiting_lora_adapters", ""))
    m.max_lora = _int_label(labels, "max_lora")


def parse_metrics(text: bytes, into: Metrics | None = None) -> Metrics:
    """Update (or create) a Metrics snapshot from vLLM Prometheus text."""
    m = into if into is not None else Metrics()
    m.waiting = sum(v for _, v in _series(text, WAITING))
    m.running = sum(v for _, v in _series(text, RUNNING))
    kv = _series(text, KV) or _series(text, KV_OLD)
    m.kv_usage = max((v for _, v in kv), default=0.0)
    parse_lora(text, m)
    cache = _series(text, CACHE_CONFIG)
    if cache:
        labels = _labels(cache[0][0])
        m.block_size = _int_label(labels, "block_size")
        m.num_gpu_blocks = _int_label(labels, "num_gpu_blocks")
    return m


class Scraper:
    """Keeps one scrape task per endpoint in the datastore, following endpoint changes."""

    def __init__(self, store: Datastore, *, interval_s: float, timeout_s: float, path: str,
                 on_error: Callable[[str], None] | None = None, on_scraped: Callable[[], None] | None = None) -> None:
        self.store = store
        self.interval = interval_s
        self.timeout = timeout_s
        self.path = path
        self.on_error = on_error
        # Called after each successful scrape (flow control re-checks its queue on fresh metrics).
        self.on_scraped = on_scraped
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
                        m.scrapes += 1
                        f = self.store.inflight.get(key)
                        if f is not None:
                            f.since_scrape = 0
                        if self.on_scraped is not None:
                            self.on_scraped()
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
