"""`python -m benchmarks SCENARIO|all` (also `igw bench ...`): run scenarios, write results.

Writes benchmarks/results/<scenario>.json (environment, exact command, raw results),
<scenario>.png and README.md (summary of every JSON present).
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
from typing import Any, Sequence

from . import report
from .catalog import discover, resolve
from .scenario import SCENARIO_DIR, ScenarioError


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
        "upstream_epp": os.environ.get("IGW_UPSTREAM_EPP") or None, "upstream_sim": os.environ.get("IGW_UPSTREAM_SIM") or None,
    }


def build_parser(prog: str = "python -m benchmarks") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Run benchmark scenarios and write benchmarks/results/.")
    add_arguments(p)
    return p


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("scenario", nargs="?", default=None,
                   help="scenario name (file in benchmarks/scenarios/), a path to a YAML file, or 'all'")
    p.add_argument("--out", type=Path, default=report.RESULTS_DIR, help="results directory (default benchmarks/results)")
    p.add_argument("--list", action="store_true", help="list scenarios and exit")
    p.add_argument("--report-only", action="store_true", help="rebuild README.md and plots from the JSON files")


def run(args: argparse.Namespace, command: str) -> int:
    if args.list:
        for sc in discover():
            print(f"{sc.name:16} {sc.kind:9} {sc.path.relative_to(SCENARIO_DIR.parent.parent)}  "
                  f"strategies: {', '.join(s.name for s in sc.strategies)}")
        return 0
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    total = None
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
            if sc.kind == "overhead":
                from . import overhead

                res = overhead.run(sc, log=lambda m: print(m, flush=True))
            else:
                from . import quality

                res = quality.run(sc, log=lambda m: print(m, flush=True))
            doc = {"scenario": sc.name, "kind": sc.kind, "order": sc.order, "description": sc.description,
                   "scenario_file": str(sc.path.relative_to(SCENARIO_DIR.parent.parent)) if sc.path.is_relative_to(SCENARIO_DIR.parent.parent) else str(sc.path),
                   "command": command, "environment": env, "duration_s": round(time.monotonic() - t0, 1),
                   "time_scale": sc.time_scale, "slo_ttft_s": float(sc.slo.get("ttft_s", 2.0)) if sc.slo else None,
                   "cluster": sc.cluster, "workload": sc.workload, "result": res,
                   "simulator": ("upstream" if sc.cluster.get("simulator") == "upstream" and os.environ.get("IGW_UPSTREAM_SIM")
                                 else "ours") if sc.kind == "quality" else None}
            (out / f"{sc.name}.json").write_text(json.dumps(doc, indent=1, default=str) + "\n")
            print(f"   {sc.name} done in {doc['duration_s']:.0f} s", flush=True)
        total = time.monotonic() - t_all
        print(f"== all scenarios done in {total / 60:.1f} min", flush=True)
    docs = report.load_docs(out)
    if not docs:
        print("no results to report", file=sys.stderr)
        return 1
    report.plots(docs, out)
    if args.report_only:
        command = next(iter(docs.values())).get("command", command)
    if total is None or args.scenario != "all":
        total = sum(d.get("duration_s", 0) for d in docs.values())
    (out / "README.md").write_text(report.summary_markdown(docs, command, total) + "\n")
    print(f"wrote {out}/README.md and {len(docs)} result files")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    return run(args, "uv run python -m benchmarks " + shlex.join(argv))
