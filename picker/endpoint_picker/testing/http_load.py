"""Keep-alive HTTP/1.1 load for the overhead benchmarks, and what is measured of it: latency
percentiles, requests/s, and a process's CPU time from /proc."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from ..http11 import HttpConnection
from ..loopback import local_host

CLK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


class Load:
    """Keep-alive HTTP/1.1 load: open loop at a fixed rate or closed loop at fixed concurrency."""

    def __init__(self, port: int, body: bytes) -> None:
        self.port = port
        self.headers = {"Content-Type": "application/json"}
        self.body = body
        self.idle: list[HttpConnection] = []

    async def one(self, lat: list[float], errors: list[int], t0: float | None = None) -> None:
        conn = self.idle.pop() if self.idle else HttpConnection(local_host(), self.port, timeout=60)
        t = time.perf_counter() if t0 is None else t0  # open loop: from the intended send time
        try:
            status, _, _ = await conn.request("POST", "/v1/completions", self.headers, self.body)
            if status == 200:
                lat.append(time.perf_counter() - t)
            else:
                errors.append(status)
            self.idle.append(conn)
        except Exception:  # noqa: BLE001 (count any failure)
            conn.close()
            errors.append(0)

    async def open_loop(self, rate: float, seconds: float, max_connections: int = 128) -> tuple[list[float], list[int], float]:
        """Requests start on a fixed schedule; at most max_connections in flight (latency counts
        the wait for a free connection, so an overloaded target shows up as latency)."""
        lat: list[float] = []
        errors: list[int] = []
        n = int(rate * seconds)
        slots = asyncio.Semaphore(max_connections)
        start = time.perf_counter()

        async def scheduled(at: float) -> None:
            async with slots:
                await self.one(lat, errors, at)

        tasks = []
        for i in range(n):
            at = start + i / rate
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(scheduled(at)))
        await asyncio.gather(*tasks)
        return lat, errors, time.perf_counter() - start

    async def closed_loop(self, concurrency: int, seconds: float, max_requests: int = 1_000_000) -> tuple[list[float], list[int], float]:
        lat: list[float] = []
        errors: list[int] = []
        deadline = time.perf_counter() + seconds
        count = [0]

        async def worker() -> None:
            while time.perf_counter() < deadline and count[0] < max_requests:
                count[0] += 1
                await self.one(lat, errors)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return lat, errors, time.perf_counter() - start

    def close(self) -> None:
        for c in self.idle:
            c.close()
        self.idle.clear()


def summarize(lat: list[float], errors: list[int], elapsed: float) -> dict[str, float]:
    return {"requests": len(lat), "errors": len(errors), "rps": round(len(lat) / elapsed, 1),
            "p50_ms": round(pct(lat, 0.5) * 1000, 2), "p99_ms": round(pct(lat, 0.99) * 1000, 2)}
