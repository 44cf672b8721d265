"""Traffic for fault tests and the soak: open-loop requests whose every outcome is classified.

A request ends in exactly one of these (`Outcome.cause`):

* ``ok``        — 200 and the whole body (`data: [DONE]` for a stream, content-length otherwise);
* ``refused``   — the gateway or the picker answered with an error status (429 shed or rate
  limited, 503 overloaded/unavailable, ...): counted by status and dropped reason, not lost;
* ``lost``      — no response headers ever arrived (connection refused or reset, timeout before
  the first byte): a request that had not started, which no fault may cost;
* ``cut``       — headers arrived (a stream had started) and the body stopped short.

One connection per request (HTTP/1.1, `connection: close`): no pool hides a failure, and an
Envoy that closes one connection only affects one request. Every run is bounded by its schedule
plus `timeout_s`. Each request carries its id in `x-user-id`, which the local gateway's access log
records (`user`) and nothing else uses for identity, so outcomes join the log.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import orjson

_ids = itertools.count()


@dataclass(frozen=True)
class RequestKind:
    name: str
    model: str
    stream: bool
    max_tokens: int
    weight: float = 1.0
    headers: tuple[tuple[str, str], ...] = ()


@dataclass
class Outcome:
    kind: str
    request_id: str
    sent: float                     # monotonic
    status: int = 0
    headers_at: float | None = None
    end: float | None = None
    complete: bool = False
    error: str | None = None
    reason: str | None = None       # x-llm-d-request-dropped-reason
    pod: str | None = None

    @property
    def started(self) -> bool:
        return self.headers_at is not None

    @property
    def cause(self) -> str:
        if not self.started:
            return "lost"
        if self.status != 200:
            return "refused"
        return "ok" if self.complete else "cut"

    @property
    def latency(self) -> float | None:
        return None if self.end is None else self.end - self.sent

    def to_json(self) -> dict:
        return {"kind": self.kind, "id": self.request_id, "sent": round(self.sent, 4), "status": self.status,
                "cause": self.cause, "latency": None if self.latency is None else round(self.latency, 4),
                "ttfb": None if self.headers_at is None else round(self.headers_at - self.sent, 4),
                "reason": self.reason, "error": self.error, "pod": self.pod}


def request_body(kind: RequestKind, i: int) -> bytes:
    return orjson.dumps({"model": kind.model, "stream": kind.stream, "max_tokens": kind.max_tokens,
                         "messages": [{"role": "user", "content": f"request {i}: tell me a story"}]})


async def send(host: str, port: int, kind: RequestKind, path: str = "/v1/chat/completions",
               timeout_s: float = 60.0) -> Outcome:
    rid = f"soak-{os.getpid()}-{next(_ids)}"
    out = Outcome(kind.name, rid, time.monotonic())
    body = request_body(kind, int(rid.rsplit("-", 1)[1]))
    head = (f"POST {path} HTTP/1.1\r\nhost: {host}:{port}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\nx-user-id: {rid}\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in kind.headers) + "\r\n").encode()
    writer = None
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(host, port, limit=1 << 22)
            writer.write(head + body)
            raw = await reader.readuntil(b"\r\n\r\n")
            out.headers_at = time.monotonic()
            lines = raw.decode("latin-1").split("\r\n")
            out.status = int(lines[0].split(" ", 2)[1])
            hdrs = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:] if l)}
            out.reason, out.pod = hdrs.get("x-llm-d-request-dropped-reason"), hdrs.get("x-inference-pod")
            data = await _read_body(reader, hdrs)
            out.complete = data.rstrip().endswith(b"[DONE]") if kind.stream and out.status == 200 else True
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, TimeoutError) as e:
        out.error = f"{type(e).__name__}: {e}"[:200]
    finally:
        out.end = time.monotonic()
        if writer is not None:
            writer.close()
    return out


async def _read_body(reader: asyncio.StreamReader, hdrs: dict[str, str]) -> bytes:
    if "content-length" in hdrs:
        return await reader.readexactly(int(hdrs["content-length"]))
    if hdrs.get("transfer-encoding", "").lower() == "chunked":
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                return b"".join(parts)
            parts.append((await reader.readexactly(size + 2))[:-2])
    return await reader.read()


@dataclass
class Traffic:
    """An open-loop Poisson schedule of a request mix against one gateway listener."""

    host: str
    port: int
    kinds: Sequence[RequestKind]
    rate: float                        # requests per second
    seed: int = 1
    timeout_s: float = 60.0
    outcomes: list[Outcome] = field(default_factory=list)
    running: dict[str, int] = field(default_factory=dict)   # requests in flight by kind name

    async def _send(self, kind: RequestKind) -> Outcome:
        self.running[kind.name] = self.running.get(kind.name, 0) + 1
        try:
            return await send(self.host, self.port, kind, timeout_s=self.timeout_s)
        finally:
            self.running[kind.name] -= 1

    async def run(self, duration_s: float, stop: asyncio.Event | None = None) -> list[Outcome]:
        rng = random.Random(self.seed)
        weights = [k.weight for k in self.kinds]
        tasks: list[asyncio.Task] = []
        start = time.monotonic()
        t = 0.0
        while True:
            t += rng.expovariate(self.rate)
            if t >= duration_s or (stop is not None and stop.is_set()):
                break
            delay = start + t - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            kind = rng.choices(self.kinds, weights)[0]
            tasks.append(asyncio.create_task(self._send(kind)))
            if len(tasks) >= 256:  # keep the task list short on long runs
                done = [x for x in tasks if x.done()]
                self.outcomes += [x.result() for x in done]
                tasks = [x for x in tasks if not x.done()]
        self.outcomes += await asyncio.gather(*tasks)
        return self.outcomes


def causes(outcomes: Sequence[Outcome]) -> dict[str, int]:
    out: dict[str, int] = {"ok": 0, "refused": 0, "lost": 0, "cut": 0}
    for o in outcomes:
        out[o.cause] += 1
    return out


def refusals(outcomes: Sequence[Outcome]) -> dict[str, int]:
    """Refused requests by `<status> <dropped reason>`."""
    out: dict[str, int] = {}
    for o in outcomes:
        if o.cause == "refused":
            k = f"{o.status} {o.reason or '-'}"
            out[k] = out.get(k, 0) + 1
    return dict(sorted(out.items()))


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    v = sorted(values)
    if not v:
        return None
    return v[min(len(v) - 1, max(0, int(round(q / 100 * len(v) + 0.5)) - 1))]


def process_usage(pid: int) -> tuple[int, int] | None:
    """(RSS in KiB, open fds) of a live process from /proc, else None."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        rss = int(next(l for l in status.splitlines() if l.startswith("VmRSS:")).split()[1])
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, StopIteration, ValueError):
        return None
    return rss, fds
