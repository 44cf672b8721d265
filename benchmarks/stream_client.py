"""A streaming chat client that times the first token, and open-loop schedules that drive it.

One request = one HTTP/1.1 connection (`connection: close`) to the gateway, `stream: true`; the
first token is the first SSE event whose delta carries content (OpenAI streams a role-only event
first). Every request ends in exactly one outcome: served (200 and `data: [DONE]`), refused (an
error status: counted by status and dropped reason), or lost (no status, a cut stream or a
timeout). Each client kind may send from its own loopback address, which the gateway appends to
X-Forwarded-For: the identity the picker's fairness and per-user limits key on.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import random
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import orjson


@dataclass(frozen=True)
class Kind:
    name: str
    model: str
    max_tokens: int = 64
    source: str | None = None       # local address to send from (client identity)
    weight: float = 1.0


@dataclass
class Outcome:
    kind: str
    sent: float                     # time.monotonic()
    status: int = 0
    first_token: float | None = None
    end: float | None = None
    done: bool = False              # data: [DONE] seen
    reason: str | None = None       # x-llm-d-request-dropped-reason
    error: str | None = None

    @property
    def cause(self) -> str:
        if self.status == 200 and self.done:
            return "served"
        if self.status and self.status != 200:
            return "refused"
        return "lost"

    @property
    def ttft(self) -> float | None:
        return None if self.first_token is None else self.first_token - self.sent

    def to_json(self, t0: float) -> dict:
        return {"kind": self.kind, "t": round(self.sent - t0, 3), "status": self.status, "cause": self.cause,
                "ttft": None if self.ttft is None else round(self.ttft, 4),
                "latency": None if self.end is None else round(self.end - self.sent, 4),
                "reason": self.reason, "error": self.error}


_serial = itertools.count()


async def stream(host: str, port: int, kind: Kind, timeout_s: float = 120.0) -> Outcome:
    out = Outcome(kind.name, time.monotonic())
    # A prompt of its own per request: identical prompts would all share one prefix-cache entry
    # and the picker's prefix affinity would (rightly) send them to one replica.
    prompt = f"request {next(_serial)} from {kind.name}: tell me a story about the number {random.random():.12f}"
    body = orjson.dumps({"model": kind.model, "stream": True, "max_tokens": kind.max_tokens,
                         "messages": [{"role": "user", "content": prompt}]})
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nhost: {host}:{port}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode()
    writer = None
    try:
        async with asyncio.timeout(timeout_s):
            kw = {"local_addr": (kind.source, 0)} if kind.source else {}
            reader, writer = await asyncio.open_connection(host, port, limit=1 << 22, **kw)
            writer.write(head + body)
            raw = await reader.readuntil(b"\r\n\r\n")
            lines = raw.decode("latin-1").split("\r\n")
            out.status = int(lines[0].split(" ", 2)[1])
            hdrs = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:] if l)}
            out.reason = hdrs.get("x-llm-d-request-dropped-reason")
            await _read_events(reader, hdrs, out)
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, TimeoutError) as e:
        out.error = f"{type(e).__name__}: {e}"[:200]
    finally:
        out.end = time.monotonic()
        if writer is not None:
            writer.close()
    return out


async def _read_events(reader: asyncio.StreamReader, hdrs: dict[str, str], out: Outcome) -> None:
    """Consume the body; mark the first content token and the final [DONE]."""
    pending = b""

    def feed(data: bytes) -> None:
        nonlocal pending
        pending += data
        while b"\n\n" in pending:
            event, pending = pending.split(b"\n\n", 1)
            for line in event.split(b"\n"):
                if not line.startswith(b"data: "):
                    continue
                payload = line[6:].strip()
                if payload == b"[DONE]":
                    out.done = True
                elif out.first_token is None and out.status == 200:
                    try:
                        delta = orjson.loads(payload)["choices"][0].get("delta") or {}
                    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
                        continue
                    if delta.get("content"):
                        out.first_token = time.monotonic()

    if "content-length" in hdrs:
        feed(await reader.readexactly(int(hdrs["content-length"])))
        return
    if hdrs.get("transfer-encoding", "").lower() != "chunked":
        feed(await reader.read())
        return
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return
        feed((await reader.readexactly(size + 2))[:-2])


async def open_loop(host: str, port: int, kinds: Sequence[Kind], rate: Callable[[float], float], duration_s: float,
                    seed: int = 1, peak: float | None = None, timeout_s: float = 120.0) -> list[Outcome]:
    """Poisson arrivals with a time-varying rate (requests/s at t seconds), by thinning a process
    at the peak rate; each arrival is one kind drawn by weight."""
    rng = random.Random(seed)
    top = peak if peak is not None else max(rate(duration_s * i / 200) for i in range(201))
    weights = [k.weight for k in kinds]
    tasks: list[asyncio.Task] = []
    start = time.monotonic()
    t = 0.0
    while top > 0:
        t += rng.expovariate(top)
        if t >= duration_s:
            break
        if rng.random() * top > rate(t):
            continue
        delay = start + t - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(stream(host, port, rng.choices(kinds, weights)[0], timeout_s)))
    return list(await asyncio.gather(*tasks))


async def closed_loop(host: str, port: int, kind: Kind, concurrency: int, duration_s: float) -> list[Outcome]:
    """`concurrency` clients back to back for duration_s (a capacity probe)."""
    deadline = time.monotonic() + duration_s
    done: list[Outcome] = []

    async def client() -> None:
        while time.monotonic() < deadline:
            done.append(await stream(host, port, kind))

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return done


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100)."""
    v = sorted(values)
    if not v:
        return None
    return v[min(len(v) - 1, max(0, math.ceil(q / 100 * len(v)) - 1))]


def summary(outcomes: Sequence[Outcome]) -> dict:
    causes = {c: sum(1 for o in outcomes if o.cause == c) for c in ("served", "refused", "lost")}
    refused: dict[str, int] = {}
    for o in outcomes:
        if o.cause == "refused":
            key = f"{o.status} {o.reason or '-'}"
            refused[key] = refused.get(key, 0) + 1
    ttfts = [o.ttft for o in outcomes if o.cause == "served" and o.ttft is not None]
    return {"requests": len(outcomes), **causes, "refused_by": dict(sorted(refused.items())),
            "ttft_p50_s": _r(percentile(ttfts, 50)), "ttft_p90_s": _r(percentile(ttfts, 90)),
            "ttft_p99_s": _r(percentile(ttfts, 99)), "ttft_max_s": _r(max(ttfts, default=None))}


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 4)
