"""Virtual-time evaluation: every workload x strategy x seed, summarised with 95% intervals.

For each cell (a workload of the training or held-out set) and seed, every strategy replays
the same request plan on a fresh simulated cluster (`vtime.run`). Per strategy and metric the
per-seed values give a mean and a Student-t 95% confidence interval; the candidate (our shipped
default) is compared with the reference weights both by their intervals (the verdict: better
or worse only when the intervals do not overlap) and by the paired per-seed difference.
Runs are independent, so `jobs` > 1 spreads them over processes.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Callable, Iterable

from . import runcache, stats
from .evalspec import Cell, Evaluation, Strategy
from .vtime import run as vrun
from .vtime.summary import METRICS, summarize

CDF_QUANTILES = (1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 99)
# Metrics where lower is better (the rest: higher is better).
LOWER_IS_BETTER = {"ttft_p50", "ttft_p90", "ttft_p99", "tpot_p50", "tpot_p90", "e2e_p90", "shed_rate"}
VERDICT_METRICS = ("ttft_p50", "ttft_p90", "ttft_p99", "tpot_p90", "goodput_rps")


def run_one(spec: Evaluation, cell: Cell, strategy: Strategy, seed: int, strategy_dict: dict[str, Any] | None = None
            ) -> dict[str, Any]:
    """One run, summarised. `strategy_dict` overrides the strategy (weight search)."""
    wl = cell.workload.model_dump()
    res = vrun.run(wl, spec.cluster_for(cell), strategy_dict or spec.run_strategy(strategy), seed,
                   spec.scrape.model_dump())
    out = summarize(res, cell.slo.model_dump(), cell.workload.warmup_s)
    ttft = sorted(s.ttft for s in res.samples if s.status == 200 and s.ttft is not None
                  and res.start + cell.workload.warmup_s <= s.arrival < res.start + res.duration_s)
    out["ttft_quantiles"] = [stats.percentile(ttft, q) for q in CDF_QUANTILES] if ttft else []
    if out["errors"]:
        raise RuntimeError(f"{cell.name}/{strategy.name}/seed {seed}: {out['errors']} requests failed "
                           f"(status {out['status']}): the strategy or the workload is broken")
    return out


def _task(args: tuple[Evaluation, Cell, Strategy, int, dict[str, Any] | None]) -> tuple[str, str, int, dict[str, Any]]:
    spec, cell, strategy, seed, override = args
    return cell.name, strategy.name, seed, run_one(spec, cell, strategy, seed, override)


def _key(task: tuple[Evaluation, Cell, Strategy, int, dict[str, Any] | None], version: str) -> str:
    spec, cell, strategy, seed, override = task
    return runcache.key(version, cell.model_dump(), spec.cluster_for(cell), override or spec.run_strategy(strategy),
                        spec.scrape.model_dump(), seed)


def run_tasks(tasks: list[tuple[Evaluation, Cell, Strategy, int, dict[str, Any] | None]], jobs: int,
              log: Callable[[str], None], cache: runcache.RunCache | None = None
              ) -> Iterable[tuple[str, str, int, dict[str, Any]]]:
    """Run every task (in `jobs` processes); runs already in `cache` are not run again, new ones
    are added to it as they finish, so an interrupted evaluation resumes."""
    t0 = time.monotonic()
    version = runcache.code_version() if cache is not None else ""
    keys = [_key(t, version) for t in tasks] if cache is not None else [""] * len(tasks)
    todo = []
    for t, k in zip(tasks, keys):
        hit = cache.get(k) if cache is not None else None
        if hit is not None:
            yield t[1].name, t[2].name, t[3], hit
        else:
            todo.append((t, k))
    if len(todo) < len(tasks):
        log(f"  {len(tasks) - len(todo)} runs from the cache ({runcache.PATH.name}), {len(todo)} to run")
    done = 0
    if jobs <= 1:
        results: Iterable = map(_task, (t for t, _ in todo))
    else:
        pool = ProcessPoolExecutor(max_workers=jobs)
        results = pool.map(_task, (t for t, _ in todo), chunksize=1)
    try:
        for (_, k), r in zip(todo, results):
            if cache is not None:
                cache.put(k, r[3])
            done += 1
            if done % 25 == 0 or done == len(todo):
                log(f"  {done}/{len(todo)} runs, {time.monotonic() - t0:.0f} s")
            yield r
    finally:
        if jobs > 1:
            pool.shutdown(cancel_futures=True)


def aggregate(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {m: stats.mean_ci([r.get(m) for r in per_seed]) for m in METRICS}
    qs = [r["ttft_quantiles"] for r in per_seed if r.get("ttft_quantiles")]
    out["ttft_cdf"] = [{"q": q, **stats.mean_ci([v[k] for v in qs])} for k, q in enumerate(CDF_QUANTILES)] if qs else []
    objectives = sorted({o for r in per_seed for o in (r.get("by_objective") or {})})
    if objectives:
        out["by_objective"] = {o: {m: stats.mean_ci([(r.get("by_objective") or {}).get(o, {}).get(m) for r in per_seed])
                                   for m in ("ttft_p50", "ttft_p90", "ttft_p99", "goodput_rps", "shed_rate")}
                               for o in objectives}
    out["cpu_s"] = sum(r["cpu_s"] for r in per_seed)
    out["simulated_s"] = sum(r["simulated_s"] for r in per_seed)
    out["requests"] = sum(r["requests"] for r in per_seed)
    return out


def verdict(candidate: dict[str, Any], reference: dict[str, Any], metric: str) -> str:
    """'better' / 'worse' (intervals do not overlap) or 'tie' (they overlap)."""
    a, b = candidate[metric], reference[metric]
    if not stats.intervals_separate(a, b):
        return "tie"
    lower = metric in LOWER_IS_BETTER
    return "better" if (a["mean"] < b["mean"]) == lower else "worse"


def evaluate(spec: Evaluation, *, sets: tuple[str, ...] = ("held_out", "training"), seeds: int | None = None,
             jobs: int = 1, cells: tuple[str, ...] = (), log: Callable[[str], None] = print,
             cache: runcache.RunCache | None = None) -> dict[str, Any]:
    """`cells` restricts the run to the named workloads (development; committed runs use all)."""
    n_seeds = seeds or spec.seeds
    unknown = set(cells) - {c.name for c in spec.workloads}
    if unknown:
        raise ValueError(f"unknown cells {sorted(unknown)} (known: {', '.join(c.name for c in spec.workloads)})")
    selected = cells
    cells = [c for c in spec.workloads if c.set in sets and (not selected or c.name in selected)]
    tasks = [(spec, c, s, seed, None) for c in cells for seed in range(n_seeds) for s in spec.strategies]
    log(f"  {len(cells)} workloads x {len(spec.strategies)} strategies x {n_seeds} seeds = {len(tasks)} runs, "
        f"{jobs} process(es)")
    raw: dict[str, dict[str, list[dict[str, Any]]]] = {c.name: {s.name: [] for s in spec.strategies} for c in cells}
    t0, cpu0 = time.monotonic(), time.process_time()
    for cell, strat, seed, summary in run_tasks(tasks, jobs, log, cache):
        summary["seed"] = seed
        raw[cell][strat].append(summary)
    out: dict[str, Any] = {"seeds": n_seeds, "scrape": spec.scrape.model_dump(), "reference": spec.reference,
                           "candidate": spec.candidate, "cells": {},
                           "strategies": {s.name: {"type": s.type, "description": s.description,
                                                   "config": spec.picker_config(s) if s.type == "picker" else None}
                                          for s in spec.strategies},
                           "wall_s": time.monotonic() - t0, "cpu_s_this_process": time.process_time() - cpu0,
                           "jobs": jobs, "loadavg": os.getloadavg()}
    for c in cells:
        runs = {name: sorted(v, key=lambda r: r["seed"]) for name, v in raw[c.name].items()}
        agg = {name: aggregate(v) for name, v in runs.items()}
        cand, ref = runs[spec.candidate], runs[spec.reference]
        out["cells"][c.name] = {
            "set": c.set, "family": c.family, "description": c.description, "workload": c.workload.model_dump(),
            "cluster": spec.cluster_for(c), "slo": c.slo.model_dump(), "strategies": agg,
            "paired_candidate_minus_reference": {m: stats.paired_diff_ci([r.get(m) for r in cand], [r.get(m) for r in ref])
                                                 for m in METRICS},
            "verdict": {m: verdict(agg[spec.candidate], agg[spec.reference], m) for m in VERDICT_METRICS},
            "per_seed": {name: [{k: v for k, v in r.items() if k != "ttft_quantiles"} for r in rs]
                         for name, rs in runs.items()},
        }
    return out
