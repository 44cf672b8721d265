"""`python -m benchmarks SCENARIO|all` (also `igw bench ...`): run scenarios, write results.

Writes benchmarks/results/<scenario>.json (environment, exact command, raw results), plots,
and README.md (the summary of every JSON present). Kinds: `overhead` and `quality` start real
processes (Envoy, picker, simulators); `evaluation`, `search`, `scale` and `crosscheck` are the
virtual-time and in-process ones (see benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from . import report
from .catalog import discover, resolve
from .scenario import SCENARIO_DIR, ScenarioError


class StrategyFailed(RuntimeError):
    """A strategy produced errors instead of numbers: the run fails loudly rather than report zeros."""


def environment() -> dict[str, Any]:
    from .procs import envoy_version

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    try:
        kb = int(next(l for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal")).split()[1])
        mem = round(kb / 1024 / 1024, 1)
    except (OSError, StopIteration, ValueError):
        pass
    root = Path(__file__).resolve().parent.parent

    def git(*a: str) -> str:
        try:
            return subprocess.run(["git", *a], cwd=root, capture_output=True, text=True, timeout=10).stdout.strip()
        except Exception:  # noqa: BLE001
            return ""

    return {
        "cpu_model": cpu, "cpus": os.cpu_count(), "memory_gib": mem, "python": platform.python_version(),
        "platform": platform.platform(), "envoy_version": envoy_version(), "git_sha": git("rev-parse", "--short=12", "HEAD"),
        "git_dirty": bool(git("status", "--porcelain", "--", "benchmarks", "picker", "simulator")),
        "started_at": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "loadavg_at_start": os.getloadavg(),
        "upstream_epp": os.environ.get("IGW_UPSTREAM_EPP") or None, "upstream_sim": os.environ.get("IGW_UPSTREAM_SIM") or None,
    }


def build_parser(prog: str = "python -m benchmarks") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Run benchmark scenarios and write benchmarks/results/.")
    add_arguments(p)
    return p


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("scenario", nargs="?", default=None,
                   help="scenario name (file in benchmarks/scenarios/), a path to a YAML file, 'all', or 'soak' "
                        "(30 minutes of faults under load, benchmarks/soak.py)")
    p.add_argument("--out", type=Path, default=report.RESULTS_DIR, help="results directory (default benchmarks/results)")
    p.add_argument("--list", action="store_true", help="list scenarios and exit")
    p.add_argument("--report-only", action="store_true", help="rebuild README.md and plots from the JSON files")
    p.add_argument("--seeds", type=int, default=None, help="virtual-time kinds: seeds per cell (default: the file's)")
    p.add_argument("--jobs", type=int, default=1, help="virtual-time kinds: worker processes (default 1)")
    p.add_argument("--sets", default="held_out,training",
                   help="evaluation: which workload sets to run (default held_out,training)")
    p.add_argument("--cells", default="", help="evaluation: only these workloads (comma-separated; for development)")
    p.add_argument("--no-cache", action="store_true",
                   help="virtual-time kinds: run every run again (default: reuse runs finished with the same code "
                        "and settings, benchmarks/.work/vtime-runs.jsonl)")


def _cache(args: argparse.Namespace) -> Any:
    from .runcache import RunCache

    return None if getattr(args, "no_cache", False) else RunCache()


def _runner(sc: Any, args: argparse.Namespace, log: Callable[[str], None]) -> dict[str, Any]:
    if sc.kind == "overhead":
        from . import overhead

        return overhead.run(sc, log=log)
    if sc.kind == "quality":
        from . import quality

        return quality.run(sc, log=log)
    if sc.kind == "evaluation":
        from . import evaluation

        return evaluation.evaluate(sc, sets=tuple(args.sets.split(",")), seeds=args.seeds, jobs=args.jobs,
                                   cells=tuple(c for c in args.cells.split(",") if c), log=log, cache=_cache(args))
    if sc.kind == "search":
        from . import search

        return search.run(sc, seeds=args.seeds, jobs=args.jobs, log=log, cache=_cache(args))
    if sc.kind == "scale":
        from . import scale

        return scale.run(sc, log=log)
    if sc.kind == "crosscheck":
        from . import crosscheck

        return crosscheck.run(sc, jobs=args.jobs, log=log)
    raise ScenarioError(f"{sc.name}: no runner for kind {sc.kind!r}")


def _doc(sc: Any, res: dict[str, Any], command: str, env: dict[str, Any], seconds: float) -> dict[str, Any]:
    root = SCENARIO_DIR.parent.parent
    doc = {"scenario": sc.name, "kind": sc.kind, "order": sc.order, "description": sc.description,
           "scenario_file": str(sc.path.relative_to(root)) if sc.path.is_relative_to(root) else str(sc.path),
           "command": command, "environment": env, "duration_s": round(seconds, 1),
           "loadavg_at_end": os.getloadavg(), "result": res}
    if sc.kind in ("overhead", "quality"):
        doc.update({"time_scale": sc.time_scale, "slo_ttft_s": float(sc.slo.get("ttft_s", 2.0)) if sc.slo else None,
                    "cluster": sc.cluster, "workload": sc.workload,
                    "simulator": ("upstream" if sc.cluster.get("simulator") == "upstream" and os.environ.get("IGW_UPSTREAM_SIM")
                                  else "ours") if sc.kind == "quality" else None})
    return doc


SOAK = "soak"


def run(args: argparse.Namespace, command: str) -> int:
    if args.list:
        for sc in discover():
            strategies = ", ".join(getattr(s, "name", s) for s in getattr(sc, "strategies", []) or []) or "-"
            print(f"{sc.name:16} {sc.kind:11} {sc.path.relative_to(SCENARIO_DIR.parent.parent)}  strategies: {strategies}")
        return 0
    out: Path = args.out
    if args.scenario == SOAK:  # its own driver and results directory (not part of `all`: 30 min)
        from .soak import main as soak_main

        return soak_main(["--out", str(out / "soak")])
    out.mkdir(parents=True, exist_ok=True)
    total = None
    failed: list[str] = []
    if not args.report_only:
        if not args.scenario:
            print("error: name a scenario or 'all' (see --list)", file=sys.stderr)
            return 2
        try:
            scenarios = resolve(args.scenario)
        except ScenarioError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        env = environment()
        t_all = time.monotonic()
        for sc in scenarios:
            print(f"== {sc.name} ({sc.kind}) — {sc.path.name}", flush=True)
            t0 = time.monotonic()
            res = _runner(sc, args, lambda m: print(m, flush=True))
            doc = _doc(sc, res, command, env, time.monotonic() - t0)
            (out / f"{sc.name}.json").write_text(json.dumps(doc, indent=1, default=str) + "\n")
            failed += [f"{sc.name}/{name}: {why}" for name, why in (res.get("failed") or {}).items()]
            print(f"   {sc.name} done in {doc['duration_s']:.0f} s", flush=True)
        total = time.monotonic() - t_all
        print(f"== all scenarios done in {total / 60:.1f} min", flush=True)
    docs = report.load_docs(out)
    if not docs:
        print("no results to report", file=sys.stderr)
        return 1
    report.plots(docs, out)
    (out / "README.md").write_text(report.summary_markdown(docs, command, total) + "\n")
    print(f"wrote {out}/README.md and {len(docs)} result files")
    if failed:
        print("error: strategies failed (their rows say FAILED, not zeros):\n  " + "\n  ".join(failed), file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    return run(args, "uv run python -m benchmarks " + shlex.join(argv))
