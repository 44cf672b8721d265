"""Open-loop (Poisson/scheduled) and closed-loop load with per-request timing.

Open loop: each request is sent at its planned time whether or not earlier ones finished, and
latency is measured from the *planned* time (so a lagging client or a full connection pool
shows up as latency instead of silently lowering the offered load: no coordinated omission).
Every run is bounded: the schedule ends at its duration and stragglers are cut at `drain_s`.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Sequence

from .httpclient import Response


@dataclass
class Sample:
    t_sched: float              # planned send time (monotonic)
    t_end: float
    status: int
    error: str | None
    t_first: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int | None = None
    backend: str | None = None
    tag: Any = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.status == 200

    @property
    def latency(self) -> float:
        return self.t_end - self.t_sched

    @property
    def ttft(self) -> float | None:
        return None if self.t_first is None else self.t_first - self.t_sched

    @property
    def tpot(self) -> float | None:
        if self.t_first is None or self.completion_tokens < 2:
            return None
        return (self.t_end - self.t_first) / (self.completion_tokens - 1)


Send = Callable[[Any], Awaitable[Response]]


def to_sample(t_sched: float, r: Response, tag: Any = None) -> Sample:
    s = Sample(t_sched=t_sched, t_end=r.t_end or time.monotonic(), status=r.status, error=r.error, t_first=r.t_first,
               backend=r.headers.get("x-inference-pod"), tag=tag)
    u = r.usage
    if u:
        s.prompt_tokens = int(u.get("prompt_tokens") or 0)
        s.completion_tokens = int(u.get("completion_tokens") or 0)
        d = u.get("prompt_tokens_details") or {}
        if d.get("cached_tokens") is not None:
            s.cached_tokens = int(d["cached_tokens"])
    elif r.events:
        s.completion_tokens = r.events
    return s


async def open_loop(offsets: Sequence[float], items: Sequence[Any], send: Send, *, drain_s: float = 60.0,
                    start_delay: float = 0.05) -> tuple[list[Sample], float, float]:
    """Send items[i] at start+offsets[i]; returns (samples, start, end_of_schedule)."""
    loop = asyncio.get_running_loop()
    start = time.monotonic() + start_delay
    samples: list[Sample | None] = [None] * len(items)

    async def one(i: int, t_sched: float) -> None:
        try:
            r = await send(items[i])
        except asyncio.CancelledError:
            r = Response(error="cut at drain deadline", t_end=time.monotonic())
            samples[i] = to_sample(t_sched, r, i)
            raise
        samples[i] = to_sample(t_sched, r, i)

    tasks = []
    for i, off in enumerate(offsets):
        t = start + off
        d = t - time.monotonic()
        if d > 0:
            await asyncio.sleep(d)
        tasks.append(loop.create_task(one(i, t)))
    end_sched = start + (offsets[-1] if offsets else 0.0)
    if tasks:
        done, pending = await asyncio.wait(tasks, timeout=drain_s)
        for t in pending:
            t.cancel()
        if pending:
            await asyncio.wait(pending, timeout=5)
    out = [s if s is not None else Sample(t_sched=start + offsets[i], t_end=time.monotonic(), status=0,
                                           error="not finished", tag=i) for i, s in enumerate(samples)]
    return out, start, end_sched


async def closed_loop(concurrency: int, duration_s: float, make_item: Callable[[int], Any], send: Send,
                      max_requests: int = 1_000_000) -> tuple[list[Sample], float, float]:
    """`concurrency` workers send back-to-back for `duration_s`; returns (samples, start, end)."""
    samples: list[Sample] = []
    start = time.monotonic()
    deadline = start + duration_s
    counter = iter(range(max_requests))

    async def worker() -> None:
        for n in counter:
            if time.monotonic() >= deadline:
                return
            t = time.monotonic()
            r = await send(make_item(n))
            samples.append(to_sample(t, r, n))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return samples, start, time.monotonic()


def poisson_offsets(rate: float, duration_s: float, seed: int = 1) -> list[float]:
    rng = random.Random(seed)
    out, t = [], 0.0
    while True:
        t += rng.expovariate(rate)
        if t >= duration_s:
            return out
        out.append(t)
