"""Virtual time against real sockets: does the virtual harness reproduce the real-socket runs?

For each listed quality scenario (real processes: Envoy, our picker, simulator replicas at a
time scale) the runner plays it `real_repeats` times with the listed strategies, then replays the
*same* request plan in virtual time (`vtime.run(..., time_scale=..., plan_seed=...)`: the same
arrivals, prompts and cluster; the picker's scrape interval divided by the time scale, as the
real picker scrapes in real time) for `virtual_seeds` seeds (scrape phases, tie-breaks). TTFT
p50/p90 are compared as relative differences of the means; the real repeats' own spread says how
much of the difference is the real runs' noise. The tolerance stated in the results is the
largest relative difference found, per percentile.
"""

from __future__ import annotations

import copy
import time
from typing import Any, Callable

from . import catalog, quality, stats
from .evalspec import Crosscheck
from .scenario import Scenario, Strategy, picker_config
from .vtime import run as vrun

ENVOY_LB = {"ROUND_ROBIN": "round-robin", "LEAST_REQUEST": "least-request"}


def virtual_strategy(st: Strategy) -> dict[str, Any] | None:
    """The virtual twin of a real strategy (None: no twin, e.g. the real oracle's own algorithm)."""
    if st.type == "envoy" and st.lb in ENVOY_LB:
        return {"type": ENVOY_LB[st.lb]}
    if st.type == "picker":
        return {"type": "picker", "config": picker_config(st)}
    return None


def _virtual(sc: Scenario, st: Strategy, seeds: int, latency_ms: float) -> list[dict[str, float | None]]:
    vs = virtual_strategy(st)
    assert vs is not None
    ts = sc.time_scale
    interval = vrun.scrape_interval_s(vs, {}) * 1000.0 / ts      # real-time scrapes, seen in simulated time
    out = []
    for seed in range(seeds):
        res = vrun.run(sc.workload, sc.cluster, vs, seed, {"interval_ms": interval, "latency_ms": latency_ms / ts},
                       time_scale=ts, plan_seed=int(sc.workload.get("seed", 1)))
        ttft = [s.ttft for s in res.samples if s.status == 200 and s.ttft is not None]
        out.append({"p50": stats.percentile(ttft, 50), "p90": stats.percentile(ttft, 90),
                    "requests": len(res.samples), "errors": sum(1 for s in res.samples if s.status != 200)})
    return out


def run(spec: Crosscheck, *, jobs: int = 1, log: Callable[[str], None] = print) -> dict[str, Any]:
    t0 = time.monotonic()
    out: dict[str, Any] = {"scenarios": {}, "real_repeats": spec.real_repeats, "virtual_seeds": spec.virtual_seeds,
                           "failed": {}}
    for name in spec.scenarios:
        sc = catalog.resolve(name)[0]
        if not isinstance(sc, Scenario) or sc.kind != "quality":
            raise ValueError(f"crosscheck: {name} is not a quality scenario")
        sub = copy.copy(sc)
        # Strategies without a virtual twin (the reference EPP) run for real only: their rows
        # stand beside ours in the real-socket table.
        sub.strategies = [st for st in sc.strategies if st.name in spec.strategies]
        real: dict[str, list[dict[str, Any]]] = {st.name: [] for st in sub.strategies}
        last: dict[str, Any] = {}
        for rep in range(spec.real_repeats):
            log(f"  {name}: real run {rep + 1}/{spec.real_repeats}")
            last = quality.run(sub, log=log)
            for st_name, why in last.get("failed", {}).items():
                out["failed"][f"{name}/{st_name}"] = why
            for st_name, r in last["runs"].items():
                real[st_name].append({"p50": r["ttft_s"]["p50"], "p90": r["ttft_s"]["p90"],
                                      "loadavg_1m": r.get("loadavg_1m")})
        cells: dict[str, Any] = {}
        for st in sub.strategies:
            if not virtual_strategy(st) or not real[st.name]:
                continue
            virt = _virtual(sc, st, spec.virtual_seeds, spec.scrape_latency_ms)
            cell: dict[str, Any] = {"real": real[st.name], "virtual": virt}
            for q in ("p50", "p90"):
                r = stats.mean_ci([x[q] for x in real[st.name]])
                v = stats.mean_ci([x[q] for x in virt])
                rel = (v["mean"] - r["mean"]) / r["mean"] if r["mean"] and v["mean"] is not None else None
                spread = ((max(x[q] for x in real[st.name]) - min(x[q] for x in real[st.name])) / r["mean"]
                          if r["mean"] and len(real[st.name]) > 1 else None)
                cell[q] = {"real": r, "virtual": v, "relative_difference": rel, "real_spread": spread}
            cells[st.name] = cell
            log(f"  {name:14} {st.name:22} TTFT p50 real {cell['p50']['real']['mean']} virtual "
                f"{cell['p50']['virtual']['mean']}, p90 real {cell['p90']['real']['mean']} virtual "
                f"{cell['p90']['virtual']['mean']}")
        out["scenarios"][name] = {"time_scale": sc.time_scale, "strategies": cells,
                                  # the last real run in full: the real-socket quality table
                                  "real_run": {"description": sc.description, "workload": last.get("workload"),
                                               "result": last}}
    diffs = {q: [abs(c[q]["relative_difference"]) for s in out["scenarios"].values() for c in s["strategies"].values()
                 if c[q]["relative_difference"] is not None] for q in ("p50", "p90")}
    out["tolerance"] = {q: (max(v) if v else None) for q, v in diffs.items()}
    out["median_abs_difference"] = {q: (stats.percentile(v, 50) if v else None) for q, v in diffs.items()}
    out["wall_s"] = time.monotonic() - t0
    return out
