"""Cost at scale, in process: the picker's decision at 16..1,024 endpoints and its scrape parse.

The decision is the real `Director.route` (parse, rewrite lookup, admission, every shipped
scorer, the picker, prefix record, in-flight accounting) on a datastore of N endpoints whose
metrics are parsed by the picker's `parse_metrics` from vLLM pages. While it runs, the endpoint
metrics keep changing as a 50 ms scraper would change them (at `rate` decisions per second, every
endpoint is re-scraped every rate/20 decisions) and requests complete (64 in flight), so the
scorers see a moving pool. Measured per decision: wall time (perf_counter; includes any time the
process was not scheduled on a busy machine) and CPU time (thread CPU clock; what the decision
costs). Scrape re-parses are outside both clocks; their cost is reported per endpoint instead.

Prompts: `small` (~60 tokens, 50 shared 40-token system prompts); `large` 220 KB prompts in two
kinds, `shared` (one of 20 documents + a unique question: the common case for long prompts, where
the picker reuses the shared part's hashes) and `unique` (a unique prefix every time: the worst
case).

Scrape cost: CPU of `parse_metrics` for recorded real vLLM 0.32 pages (tests/fixtures, ~50 KB)
and our simulator's page, times 20 scrapes/s, per endpoint; the real process's idle scrape CPU at
100 endpoints (HTTP included) is in the overhead scenario.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any, Callable

import orjson

from . import stats

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "vllm_metrics"
_CPU = time.thread_time


def _pages(n: int, rng: random.Random) -> list[bytes]:
    """vLLM pages with varied load: the simulator's renderer on engines in n different states."""
    from vllm_simulator.config import SimConfig
    from vllm_simulator.engine import Engine
    from vllm_simulator.metrics import Metrics

    pages = []
    for _ in range(min(n, 64)):
        eng = Engine(SimConfig(port=1, num_gpu_blocks=20000), Metrics())
        eng.kv.used = rng.randrange(0, 20000)
        eng.waiting.extend([None] * rng.randrange(0, 8))   # only counted by the renderer
        pages.append(eng.metrics.render(eng))
    return pages


def _bodies(kind: str, count: int, rng: random.Random, size: int) -> list[bytes]:
    words = "the quick brown fox jumps over a lazy dog while seven wizards hex ".split()

    def text(n: int, tag: str) -> str:
        return (f"[{tag}] " + " ".join(rng.choices(words, k=n // 4 + 1)))[:n]

    if kind == "small":
        systems = [text(160, f"system {g}") for g in range(50)]
        return [orjson.dumps({"model": "m", "prompt": systems[k % 50] + text(size - 160, f"q{k}"), "max_tokens": 16})
                for k in range(count)]
    if kind == "shared":
        docs = [text(size - 400, f"document {d}") for d in range(20)]
        return [orjson.dumps({"model": "m", "prompt": docs[rng.randrange(20)] + text(400, f"q{k}"), "max_tokens": 16})
                for k in range(count)]
    return [orjson.dumps({"model": "m", "prompt": text(size, f"unique {k}"), "max_tokens": 16}) for k in range(count)]


def decisions(n_endpoints: int, kind: str, count: int, *, config: dict[str, Any], size: int, rate: float = 500.0,
              seed: int = 1) -> dict[str, Any]:
    from endpoint_picker.config import load_config
    from endpoint_picker.datastore import Datastore, Endpoint
    from endpoint_picker.director import Director
    from endpoint_picker.scheduling.registry import build_registry
    from endpoint_picker.scrape import parse_metrics
    from endpoint_picker.selfmetrics import SelfMetrics

    rng = random.Random(seed)
    cfg = load_config(config)
    store = Datastore()
    store.set_endpoints([Endpoint(f"pod-{i}", "default", f"10.{i // 65536}.{i // 256 % 256}.{i % 256}", 8000)
                         for i in range(n_endpoints)])
    clock = [1000.0]
    director = Director(cfg, store, build_registry().build(cfg.scheduling), SelfMetrics(), rng=random.Random(seed),
                        clock=lambda: clock[0])
    pages = _pages(n_endpoints, rng)
    keys = list(store.endpoints)
    for k in keys:
        parse_metrics(rng.choice(pages), store.metrics[k])
        store.metrics[k].updated_at = clock[0]
    bodies = _bodies(kind, min(count, 400), rng, size)
    scrapes_per_decision = n_endpoints * 20.0 / rate   # every endpoint every 50 ms at `rate` decisions/s
    owed = 0.0
    in_flight: list[Any] = []
    wall: list[float] = []
    cpu: list[float] = []
    warm = min(50, count // 5)
    for j in range(count + warm):
        owed += scrapes_per_decision
        while owed >= 1.0:
            owed -= 1.0
            m = store.metrics[keys[rng.randrange(n_endpoints)]]
            parse_metrics(rng.choice(pages), m)
            m.updated_at = clock[0]
        clock[0] += 1.0 / rate
        body = bodies[j % len(bodies)]
        t0, c0 = time.perf_counter(), _CPU()
        routed = director.route("/v1/completions", {"x-request-id": str(j)}, body)
        c1, t1 = _CPU(), time.perf_counter()
        if j >= warm:
            wall.append(t1 - t0)
            cpu.append(c1 - c0)
        in_flight.append(routed)
        if len(in_flight) > 64:
            director.release_request(in_flight.pop(0))
    return {"endpoints": n_endpoints, "prompt": kind, "prompt_bytes": len(bodies[0]), "decisions": count,
            "wall_s": stats.summarize(wall, (50, 99)), "cpu_s": stats.summarize(cpu, (50, 99)),
            "cpu_s_per_decision": sum(cpu) / len(cpu)}


def scrape_cost(repeats: int = 300) -> dict[str, Any]:
    from endpoint_picker.scrape import parse_metrics

    pages: dict[str, bytes] = {f"vLLM 0.32 {p.stem}": p.read_bytes() for p in sorted(FIXTURES.glob("*.prom"))}
    pages["our simulator"] = _pages(1, random.Random(1))[0]
    out = {}
    for name, page in pages.items():
        best = float("inf")
        for _ in range(5):
            c0 = _CPU()
            for _ in range(repeats):
                parse_metrics(page)
            best = min(best, (_CPU() - c0) / repeats)
        out[name] = {"page_bytes": len(page), "parse_cpu_s": best, "cores_per_endpoint_at_50ms": best * 20}
    return out


def run(spec: Any, log: Callable[[str], None] = print) -> dict[str, Any]:
    rows = []
    t0 = time.monotonic()
    for n in spec.endpoints:
        for p in spec.prompts:
            r = decisions(n, p.kind, p.decisions, config=spec.picker_config(), size=p.bytes, rate=spec.rate)
            r["loadavg_1m"] = os.getloadavg()[0]
            rows.append(r)
            log(f"  {n:5d} endpoints, {p.kind:6} prompts: decision CPU p50 {r['cpu_s']['p50'] * 1e3:.3f} "
                f"p99 {r['cpu_s']['p99'] * 1e3:.3f} ms, wall p99 {r['wall_s']['p99'] * 1e3:.3f} ms "
                f"(load {r['loadavg_1m']:.1f})")
    scrape = scrape_cost()
    for name, s in scrape.items():
        log(f"  scrape parse, {name} ({s['page_bytes']} B): {s['parse_cpu_s'] * 1e6:.0f} µs = "
            f"{s['cores_per_endpoint_at_50ms']:.4f} cores per endpoint at 50 ms")
    return {"rows": rows, "scrape": scrape, "rate": spec.rate, "config": spec.picker_config(),
            "target": {"endpoints": 256, "prompt": "small", "p99_s": 0.001},
            "wall_s": time.monotonic() - t0}
