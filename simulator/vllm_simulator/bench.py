"""Tiny closed-loop load generator (raw asyncio sockets, keep-alive) to measure req/s.

    python -m vllm_simulator.bench --url http://127.0.1.3:8000 --concurrency 64 \
        --duration 10 --max-requests 200000 [--stream] [--max-tokens 4]

Bounded by both --duration and --max-requests.  Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from urllib.parse import urlparse


async def _worker(host, port, payload, deadline, budget, lat, errors):
    r, w = await asyncio.open_connection(host, port)
    try:
        while time.monotonic() < deadline and budget[0] > 0:
            budget[0] -= 1
            t = time.perf_counter()
            w.write(payload)
            head = await r.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            hl = head.lower()
            i = hl.find(b"content-length:")
            if i >= 0:
                n = int(hl[i + 15:hl.find(b"\r\n", i)])
                await r.readexactly(n)
            else:  # chunked SSE: read until the terminating chunk
                while True:
                    line = await r.readuntil(b"\r\n")
                    size = int(line.strip(), 16)
                    await r.readexactly(size + 2)
                    if size == 0:
                        break
            if status != 200:
                errors[0] += 1
            lat.append(time.perf_counter() - t)
    finally:
        w.close()


async def run(url: str, concurrency: int, duration: float, max_requests: int, stream: bool,
              max_tokens: int, model: str) -> dict:
    u = urlparse(url)
    body = json.dumps({"model": model, "prompt": "hi", "max_tokens": max_tokens, "ignore_eos": True,
                       "stream": stream}).encode()
    payload = (b"POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
               b"content-length: %d\r\n\r\n%s" % (len(body), body))
    lat: list[float] = []
    errors = [0]
    budget = [max_requests]
    t0 = time.monotonic()
    deadline = t0 + duration
    await asyncio.gather(*(_worker(u.hostname, u.port, payload, deadline, budget, lat, errors)
                           for _ in range(concurrency)))
    el = time.monotonic() - t0
    lat.sort()
    return {"requests": len(lat), "errors": errors[0], "seconds": round(el, 2),
            "req_per_s": round(len(lat) / el, 1),
            "p50_ms": round(lat[len(lat) // 2] * 1e3, 2) if lat else None,
            "p99_ms": round(lat[int(len(lat) * 0.99)] * 1e3, 2) if lat else None}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--max-requests", type=int, default=200_000)
    p.add_argument("--stream", action="store_true")
    p.add_argument("--max-tokens", type=int, default=4)
    p.add_argument("--model", default="meta-llama/Llama-3.1-8B-Instruct")
    a = p.parse_args()
    print(json.dumps(asyncio.run(run(a.url, a.concurrency, min(a.duration, 300), a.max_requests, a.stream,
                                     a.max_tokens, a.model))))


if __name__ == "__main__":
    main()
