"""Weight search on the evaluation's training set only (never on a held-out cell).

Every candidate picker config runs on every training cell for `seeds` seeds (the same plans for
every candidate). Per cell a candidate is compared with the baseline (the first candidate, the
reference EPP's weights) by

    cost(cell) = (TTFT p90 / baseline TTFT p90) x (baseline goodput / goodput)

(means over seeds; lower is better: a candidate that sheds its way to low latency pays in
goodput), and candidates are ranked by the geometric mean of cost over the training cells. The
winner is what `picker-default` should ship; changing the shipped default is a code change
(endpoint_picker.config.DEFAULT_SCORER_WEIGHTS) made after reading this result, and the held-out
set then says whether it was a good idea.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable

from . import evalspec, runcache, stats
from .evaluation import run_tasks
from .evalspec import Search, Strategy


def _cost(c: dict[str, Any], base: dict[str, Any]) -> float | None:
    """None when the baseline itself has no number for the cell; infinite when the candidate has
    no goodput where the baseline has some (it must rank last, not drop the cell)."""
    t, tb = c["ttft_p90"]["mean"], base["ttft_p90"]["mean"]
    g, gb = c["goodput_rps"]["mean"], base["goodput_rps"]["mean"]
    if not tb or not gb:
        return None
    if not t or not g:
        return math.inf
    return (t / tb) * (gb / g)


def rank(cells: dict[str, dict[str, Any]], baseline: str) -> dict[str, Any]:
    """Per candidate: per-cell cost against the baseline and the geometric mean; the ranking."""
    out: dict[str, Any] = {}
    for name, per_cell in cells.items():
        costs = {cell: _cost(per_cell[cell], cells[baseline][cell]) for cell in per_cell}
        valid = [c for c in costs.values() if c is not None]
        objective = None
        if valid:
            objective = math.inf if math.inf in valid else math.exp(sum(math.log(c) for c in valid) / len(valid))
        out[name] = {"cost": costs, "objective": objective}
    order = sorted(out, key=lambda n: out[n]["objective"] if out[n]["objective"] is not None else math.inf)
    return {"candidates": out, "ranking": order}


def run(spec: Search, *, seeds: int | None = None, jobs: int = 1, log: Callable[[str], None] = print,
        cache: runcache.RunCache | None = None) -> dict[str, Any]:
    ev = evalspec.load(spec.folder / spec.evaluation)
    cells = ev.cells("training")
    n_seeds = seeds or spec.seeds
    strategies = [Strategy(name=c.name, type="picker", config=c.config) for c in spec.candidates]
    tasks = [(ev, cell, st, seed, {"type": "picker", "config": st.config}) for cell in cells for st in strategies
             for seed in range(n_seeds)]
    log(f"  {len(strategies)} candidates x {len(cells)} training cells x {n_seeds} seeds = {len(tasks)} runs")
    raw: dict[str, dict[str, list[dict[str, Any]]]] = {s.name: {c.name: [] for c in cells} for s in strategies}
    t0 = time.monotonic()
    for cell, cand, _seed, summary in run_tasks(tasks, jobs, log, cache):
        raw[cand][cell].append(summary)
    per: dict[str, dict[str, Any]] = {}
    for cand, by_cell in raw.items():
        per[cand] = {cell: {m: stats.mean_ci([r[m] for r in runs]) for m in ("ttft_p50", "ttft_p90", "ttft_p99", "goodput_rps")}
                     for cell, runs in by_cell.items()}
    baseline = strategies[0].name
    ranked = rank(per, baseline)
    ranking = ranked["ranking"]
    out_c = {s.name: {"config": s.config, "cells": per[s.name], **ranked["candidates"][s.name]} for s in strategies}
    for i, n in enumerate(ranking):
        log(f"  {i + 1:2d}. {n:28} objective {out_c[n]['objective']:.3f}")
    return {"evaluation": spec.evaluation, "training_cells": [c.name for c in cells], "seeds": n_seeds,
            "baseline": baseline, "candidates": out_c, "ranking": ranking, "winner": ranking[0],
            "wall_s": time.monotonic() - t0, "jobs": jobs}
