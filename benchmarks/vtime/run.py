"""One virtual-time run: a workload on a simulated cluster behind one strategy, for one seed.

    result = run(workload, cluster, strategy, seed=3, scrape={"interval_ms": 50, "latency_ms": 1})

`workload` and `cluster` are the scenario dicts (see benchmarks/README.md, evaluation);
`strategy` is `{"type": "round-robin" | "least-request" | "picker" | "oracle", "config": {...}}`.
The seed fixes the request plan (the workload's `seed` is combined with it), the scrape phases
and every tie-break, so a run is reproducible and every strategy of one seed sees the same plan.
Traffic starts 1 s after the clock (the picker has had its first scrapes, as a real picker has
when traffic arrives), runs for the workload's `duration_s` and drains for up to `drain_s`.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from vllm_simulator.config import SimConfig

from ..workloads import CHAT, PlannedRequest, lora_adapters, objectives_for, plan
from .events import EventQueue
from .replica import VirtualReplica
from .requests import answer_text, build
from .routers import LeastRequestRouter, PickerRouter, Rejected, RoundRobinRouter, Router
from .oracle import OracleRouter

MODEL = "meta-llama/Llama-3.1-8B-Instruct"
START_S = 1.0
STRATEGY_TYPES = ("round-robin", "least-request", "picker", "oracle")
TIMING_FIELDS = ("step_overhead_s", "decode_per_seq_s", "kv_read_per_token_s", "prefill_per_token_s",
                 "prefill_attn_per_token_ctx_s")


@dataclass
class Sample:
    request_id: str
    arrival: float
    status: int | str = "pending"      # HTTP status, or "timeout" when the drain ended first
    first: float | None = None
    end: float | None = None
    prompt_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    replica: int = -1
    objective: str | None = None
    reason: str | None = None

    @property
    def ttft(self) -> float | None:
        return None if self.first is None else self.first - self.arrival

    @property
    def tpot(self) -> float | None:
        if self.end is None or self.first is None or self.output_tokens < 2:
            return None
        return (self.end - self.first) / (self.output_tokens - 1)


@dataclass
class RunResult:
    samples: list[Sample]
    replica_states: list[dict[str, Any]]
    start: float
    duration_s: float
    cpu_s: float
    sim_s: float
    events: int
    scrape_captures: int
    meta: dict[str, Any] = field(default_factory=dict)


def sim_configs(cluster: dict[str, Any], workload: dict[str, Any]) -> list[SimConfig]:
    """One SimConfig per replica; `slow: {count, factor}` makes the last `count` replicas slower."""
    n = int(cluster["replicas"])
    kw: dict[str, Any] = {"model": MODEL, "port": 1, "seed": int(cluster.get("seed", 0))}
    for k in ("num_gpu_blocks", "block_size", "max_num_seqs", "max_num_batched_tokens", "max_loras", "max_cpu_loras"):
        if cluster.get(k) is not None:
            kw[k] = cluster[k]
    if workload["type"] == "lora":
        kw["lora_modules"] = [(a, a) for a in lora_adapters(workload["params"])[0]]
    slow = cluster.get("slow") or {}
    slow_n, factor = int(slow.get("count", 0)), float(slow.get("factor", 1.0))
    out = []
    for i in range(n):
        cfg = SimConfig(**kw, pod_name=f"pod-{i}")
        if i >= n - slow_n:
            cfg = cfg.replace(**{f: getattr(cfg, f) * factor for f in TIMING_FIELDS})
        out.append(cfg)
    return out


def make_router(strategy: dict[str, Any], replicas: list[VirtualReplica], events: EventQueue,
                rng: random.Random, workload: dict[str, Any]) -> Router:
    kind = strategy["type"]
    if kind == "round-robin":
        return RoundRobinRouter(len(replicas), rng)
    if kind == "least-request":
        return LeastRequestRouter(len(replicas), rng)
    if kind == "picker":
        return PickerRouter(strategy.get("config") or {}, replicas, events, rng, objectives_for(workload))
    if kind == "oracle":
        return OracleRouter(replicas, rng)
    raise ValueError(f"unknown virtual-time strategy {kind!r} (known: {', '.join(STRATEGY_TYPES)})")


def scrape_interval_s(strategy: dict[str, Any], scrape: dict[str, Any]) -> float:
    """`scrape.interval_ms` when given, else the picker's own `scrape.interval_ms` (its default
    for non-picker strategies, whose decisions read no metrics)."""
    if scrape.get("interval_ms") is not None:
        return float(scrape["interval_ms"]) / 1000.0
    from endpoint_picker.config import load_config

    cfg = strategy.get("config") if strategy["type"] == "picker" else None
    return load_config(cfg or {}).scrape.interval_ms / 1000.0


def run(workload: dict[str, Any], cluster: dict[str, Any], strategy: dict[str, Any], seed: int,
        scrape: dict[str, Any] | None = None, *, time_scale: float = 1.0, plan_seed: int | None = None) -> RunResult:
    """`time_scale`/`plan_seed`: replay a real-socket quality scenario's exact plan (its times are
    real seconds at that time scale, its seed as given) instead of a virtual cell's."""
    scrape = scrape or {}
    interval = scrape_interval_s(strategy, scrape)
    latency = float(scrape.get("latency_ms", 1)) / 1000.0
    rng = random.Random(f"{seed}/cluster")
    events = EventQueue()
    scraped = strategy["type"] == "picker"
    replicas = [VirtualReplica(f"pod-{i}", cfg, events, interval, latency, rng.uniform(0, interval), scraped)
                for i, cfg in enumerate(sim_configs(cluster, workload))]
    router = make_router(strategy, replicas, events, random.Random(f"{seed}/router"), workload)
    if plan_seed is None:
        plan_seed = int(workload.get("seed", 1)) * 1000 + seed
    planned = plan({**workload, "seed": plan_seed}, MODEL, time_scale)
    samples: list[Sample] = []
    failures: list[BaseException] = []

    def dispatch(pr: PlannedRequest) -> None:
        s = Sample(pr.request_id, events.now, objective=pr.meta.get("objective"))
        samples.append(s)
        try:
            i, handle = router.route(pr)
        except Rejected as e:
            s.status, s.reason = e.status, e.reason
            return
        rep = replicas[i]
        s.replica = i

        def on_token(req) -> None:
            req.stream = False   # the engine calls on_token per token only for streams: once is enough
            if s.first is None:
                s.first = events.now
                router.first_token(handle)

        def on_done(req, error: str | None = None) -> None:
            try:
                if error is not None:
                    s.status, s.reason = 400, error
                    router.finished(handle)
                    return
                on_token(req)
                s.end = events.now
                s.status = 200
                s.output_tokens = req.num_output
                s.cached_tokens = req.cached_tokens or 0
                router.finished(handle)
                if pr.followup is not None:
                    nxt = pr.followup(answer_text(rep.cfg, built, req.num_output))
                    if nxt is not None:
                        nxt.request_id = f"{pr.request_id.split('.')[0]}.{nxt.meta.get('turn', 1)}"
                        events.at(events.now + nxt.t, dispatch, nxt)
            except BaseException as e:  # the engine swallows callback errors; keep them
                failures.append(e)

        built = build(rep.cfg, orjson.loads(pr.body), pr.path == CHAT, pr.request_id, on_token, on_done)
        if built.error is not None:
            s.status, s.reason = built.error
            router.finished(handle)
            return
        s.prompt_tokens = built.request.prompt_len
        rep.submit(built.request)

    for pr in planned:
        events.at(START_S + pr.t / time_scale, dispatch, pr)
    duration = float(workload["duration_s"]) / time_scale
    horizon = START_S + duration + float(workload.get("drain_s", 120)) / time_scale
    cpu0 = time.process_time()
    events.run(horizon)
    cpu = time.process_time() - cpu0
    if failures:
        raise RuntimeError(f"virtual run failed in a callback: {failures[0]!r}") from failures[0]
    for s in samples:
        if s.status == "pending":
            s.status = "timeout"
    return RunResult(samples, [r.state() for r in replicas], START_S, duration, cpu, events.now,
                     events.executed, sum(r.scrape.captures for r in replicas),
                     meta={"replicas": len(replicas), "requests_planned": len(planned)})
