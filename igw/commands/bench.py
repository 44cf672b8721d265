"""igw bench SCENARIO|all [--out DIR] [--list] [--report-only] [--seeds N] [--jobs N]: run benchmarks/ scenarios.

The arguments are benchmarks.cli's own (one definition); the benchmarks live in the repository
checkout, not in the installed package.
"""

from __future__ import annotations

import argparse
import shlex
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="run benchmark scenarios (benchmarks/scenarios/*.yaml) and write benchmarks/results/")
    try:
        from benchmarks.cli import add_arguments
    except ImportError as e:
        reason = str(e)
        p.set_defaults(run=lambda args: _unavailable(reason))
        return
    add_arguments(p)
    p.set_defaults(run=run)


def _unavailable(reason: str) -> int:
    print(f"igw bench: needs the repository checkout (benchmarks/ not importable: {reason})", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    from benchmarks.cli import run as bench_run

    return bench_run(args, "uv run igw " + shlex.join(sys.argv[1:]))
