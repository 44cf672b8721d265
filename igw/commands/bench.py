"""igw bench SCENARIO|all [--out DIR] [--list] [--report-only]: run benchmarks/ scenarios."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="run benchmark scenarios (benchmarks/scenarios/*.yaml) and write benchmarks/results/")
    p.add_argument("scenario", nargs="?", default=None,
                   help="scenario name (file in benchmarks/scenarios/), a path to a YAML file, or 'all'")
    p.add_argument("--out", type=Path, default=None, help="results directory (default benchmarks/results)")
    p.add_argument("--list", action="store_true", help="list scenarios and exit")
    p.add_argument("--report-only", action="store_true", help="rebuild README.md and plots from the JSON files")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        from benchmarks.cli import run as bench_run
        from benchmarks.report import RESULTS_DIR
    except ImportError as e:
        print(f"igw bench: needs the repository checkout (benchmarks/ not importable: {e})", file=sys.stderr)
        return 2
    if args.out is None:
        args.out = RESULTS_DIR
    return bench_run(args, "uv run igw " + shlex.join(sys.argv[1:]))
