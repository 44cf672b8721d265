"""Scheduling-quality scenarios on simulated H100 replicas.

For every strategy: fresh simulator processes (cold caches), the strategy's gateway (or the
oracle), the same planned request list (same seed, same arrival times), then the replicas'
`/sim/state` counters. All latencies are reported *real-time-equivalent*: measured seconds /
time_scale (the simulator multiplies every duration by time_scale); throughputs are per
simulated second. The measured (wall-clock) values are in the JSON as well.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import orjson

from . import failures, stats
from .httpclient import Pool
from .loadgen import Sample, open_loop
from .oracle import Oracle
from .scenario import Scenario, Strategy, picker_config
from .stacks import Gateway, NotRun, SimCluster
from .workloads import PlannedRequest, kv_demand, plan

MODEL = "meta-llama/Llama-3.1-8B-Instruct"


async def _sim_states(addresses: list[str]) -> list[dict[str, Any]]:
    out = []
    for a in addresses:
        h, _, p = a.rpartition(":")
        pool = Pool(h, int(p), 2)
        try:
            r = await pool.request("GET", "/sim/state", timeout=5)
            out.append(orjson.loads(r.body) if r.status == 200 else {})
        except Exception:  # noqa: BLE001
            out.append({})
        finally:
            pool.close()
    return out


def summarize_run(samples: list[Sample], planned: list[PlannedRequest], time_scale: float, slo_ttft_s: float,
                  schedule_s: float, states: list[dict[str, Any]]) -> dict[str, Any]:
    ts = time_scale
    ok = [s for s in samples if s.ok]
    ttft = [s.ttft / ts for s in ok if s.ttft is not None]
    tpot = [s.tpot / ts for s in ok if s.tpot is not None]
    e2e = [s.latency / ts for s in ok]
    out_tokens = sum(s.completion_tokens for s in ok)
    prompt_tokens = sum(s.prompt_tokens for s in ok)
    cached = sum(s.cached_tokens or 0 for s in ok)
    start = min(s.t_sched for s in samples) if samples else 0.0
    end = max(s.t_end for s in samples) if samples else 0.0
    makespan_sim = (end - start) / ts if samples else 0.0
    schedule_sim = schedule_s / ts
    status = Counter(s.status for s in samples if s.error is None)
    errors = Counter((s.error or "")[:60] for s in samples if s.error is not None)
    q_hits = sum(st.get("prefix_cache_hits", 0) for st in states)
    q_all = sum(st.get("prefix_cache_queries", 0) for st in states)
    per_backend = Counter(s.backend for s in ok)
    # goodput: requests meeting the TTFT SLO per simulated second of the arrival window
    good = sum(1 for s in ok if s.ttft is not None and s.ttft / ts <= slo_ttft_s)
    return {
        "requests": len(samples), "ok": len(ok),
        "status_counts": {str(k): v for k, v in sorted(status.items())},
        "http_429": status.get(429, 0),
        "client_errors": dict(errors),
        "ttft_s": stats.summarize(ttft), "tpot_s": stats.summarize(tpot), "e2e_s": stats.summarize(e2e),
        "output_tokens": out_tokens,
        "output_tokens_per_s": out_tokens / makespan_sim if makespan_sim > 0 else 0.0,
        "requests_per_s": len(ok) / makespan_sim if makespan_sim > 0 else 0.0,
        "goodput_rps": good / schedule_sim if schedule_sim > 0 else 0.0,
        "slo_attainment": good / len(samples) if samples else 0.0,
        "makespan_sim_s": makespan_sim,
        "prefix_hit_rate_usage": cached / prompt_tokens if prompt_tokens else None,
        "prefix_hit_rate_sim": q_hits / q_all if q_all else None,
        "preemptions": sum(st.get("num_preemptions", 0) for st in states),
        "kv_evictions": sum(st.get("kv_evictions", 0) for st in states),
        "lora_loads": sum(st.get("lora_loads", 0) for st in states),
        "requests_per_replica": dict(sorted(per_backend.items(), key=lambda kv: str(kv[0]))),
        "ttft_samples_s": [round(x, 4) for x in sorted(ttft)],
    }


async def _run_strategy(sc: Scenario, st: Strategy, planned: list[PlannedRequest], log) -> dict[str, Any]:
    cluster = dict(sc.cluster)
    if st.type == "upstream-epp":
        import os

        if not os.environ.get("IGW_UPSTREAM_EPP"):
            from .stacks import UPSTREAM_NOT_RUN

            raise NotRun(UPSTREAM_NOT_RUN)
    sims = SimCluster(cluster, MODEL)
    gw: Gateway | None = None
    oracle: Oracle | None = None
    cpu: dict[str, float] = {}
    try:
        cfg = picker_config(st) if st.type in ("picker", "upstream-epp") else None
        if st.type == "oracle":
            oracle = Oracle(sims.addresses, cluster)
            oracle.plan_homes(planned)
            await oracle.start()
            send = oracle.send
        else:
            gw = Gateway(st, sims.addresses, cfg)
            pool = Pool(gw.host, gw.port, limit=4096)

            async def send(pr: PlannedRequest):
                return await pool.request("POST", "/v1/completions", pr.body, stream=True, timeout=600)
        await asyncio.sleep(1.0 if gw and gw.picker else 0.3)   # picker: discovery + first scrapes
        procs = {"sim": sims, **(gw.procs() if gw else {})}
        c0 = {k: p.cpu() for k, p in procs.items()}
        t0 = time.monotonic()
        offsets = [p.t for p in planned]
        drain = float(sc.workload.get("drain_s", 60))
        samples, start, end_sched = await open_loop(offsets, planned, send, drain_s=drain)
        wall = time.monotonic() - t0
        cpu = {k: (p.cpu() - c0[k]) / wall for k, p in procs.items()}
        states = await _sim_states(sims.addresses)
        schedule_s = float(sc.workload["duration_s"])
        res = summarize_run(samples, planned, sc.time_scale, float(sc.slo.get("ttft_s", 2.0)), schedule_s, states)
        res["cpu_cores"] = cpu
        res["loadavg_1m"] = _loadavg()
        res["wall_s"] = wall
        res["config"] = cfg
        if gw is not None:
            pool.close()
        return res
    finally:
        if oracle is not None:
            oracle.close()
        if gw is not None:
            gw.stop()
        sims.stop()


def run(sc: Scenario, log=print) -> dict[str, Any]:
    return asyncio.run(_run(sc, log))


async def _run(sc: Scenario, log) -> dict[str, Any]:
    planned = plan(sc.workload, MODEL, sc.time_scale)
    c = sc.cluster
    info: dict[str, Any] = {"requests_planned": len(planned),
                            "rate_sim_rps": sc.workload["rate"], "rate_real_rps": sc.workload["rate"] / sc.time_scale,
                            "duration_real_s": sc.workload["duration_s"],
                            "duration_sim_s": sc.workload["duration_s"] / sc.time_scale,
                            "mean_prompt_tokens": sum(p.prompt_tokens for p in planned) / max(1, len(planned)),
                            "mean_output_tokens": sum(p.max_tokens for p in planned) / max(1, len(planned))}
    demand = kv_demand(sc.workload)
    if demand is not None:
        from vllm_simulator.config import default_num_gpu_blocks

        blocks = int(c.get("num_gpu_blocks") or default_num_gpu_blocks(block_size=int(c.get("block_size", 16))))
        cap = blocks * int(c.get("block_size", 16)) * int(c["replicas"])
        info["kv_capacity_tokens"] = cap
        info["kv_demand_tokens"] = demand
        info["kv_demand_fraction"] = demand / cap
    result: dict[str, Any] = {"workload": info, "runs": {}, "not_run": {}, "failed": {}}
    for st in sc.strategies:
        try:
            r = await _run_strategy(sc, st, planned, log)
        except NotRun as e:
            result["not_run"][st.name] = str(e)
            log(f"  {st.name:>24}: {e}")
            continue
        except Exception as e:  # noqa: BLE001 (a strategy that cannot run fails the run, loudly)
            result["failed"][st.name] = f"{type(e).__name__}: {e}"[:3000]
            log(f"  {st.name:>24}: FAILED: {result['failed'][st.name]}")
            continue
        why = failures.quality(r)
        if why:
            result["failed"][st.name] = why
            log(f"  {st.name:>24}: FAILED: {why}")
            continue
        r["type"] = st.type
        r["description"] = st.description
        r["search"] = st.search
        result["runs"][st.name] = r
        t = r["ttft_s"]
        log(f"  {st.name:>24}: ok {r['ok']}/{r['requests']} TTFT p50 {_s(t['p50'])} p90 {_s(t['p90'])} p99 {_s(t['p99'])} "
            f"TPOT p90 {_s(r['tpot_s']['p90'], 3)} out {r['output_tokens_per_s']:8.0f} tok/s goodput {r['goodput_rps']:6.2f} "
            f"hit {_pct(r['prefix_hit_rate_usage'])} 429 {r['http_429']} cpu {_cores(r['cpu_cores'])}")
    return result


def _loadavg() -> float | None:
    try:
        return float(open("/proc/loadavg").read().split()[0])
    except OSError:
        return None


def _s(v: float | None, nd: int = 2) -> str:
    return "  -  " if v is None else f"{v:.{nd}f}s"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v * 100:.0f}%"


def _cores(c: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.2f}" for k, v in c.items())
