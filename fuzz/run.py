"""Run the fuzz targets (fuzz/targets.py) under atheris/libFuzzer and report their figures.

    uv run python -m fuzz.run                      # every target, 55 s each (what .ci/run does)
    uv run python -m fuzz.run h2 --seconds 1800    # one target, longer
    uv run python -m fuzz.run --seconds 900 --report fuzz/results.md

Each target runs in its own process (`python -m fuzz.run --child NAME ...`): atheris instruments
the picker's modules as they are imported, libFuzzer drives the target from generated seeds
(`targets.seeds`) into a corpus directory under $IGW_CACHE_DIR, and stops at the time bound or
at the first crash, which it writes as `crash-*` next to the corpus (a regression test's input).
The parent reads libFuzzer's final stats: executions, coverage (edges and features), corpus size,
crashes. Exit status 1 when any target crashed.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("IGW_CACHE_DIR", Path.home() / ".cache" / "inference-gateway")) / "fuzz"
INSTRUMENTED = ("endpoint_picker", "hpack", "orjson")


@dataclass
class Result:
    target: str
    seconds: float
    executions: int
    edges: int
    features: int
    corpus: int
    crashes: list[str]
    exit_code: int

    @property
    def row(self) -> str:
        rate = self.executions / self.seconds if self.seconds else 0
        return (f"| `{self.target}` | {self.seconds:.0f} s | {self.executions:,} | {rate:,.0f}/s | {self.edges:,} | "
                f"{self.features:,} | {self.corpus:,} | {len(self.crashes)} |")


def _child(name: str, libfuzzer_args: list[str]) -> None:
    import atheris

    with atheris.instrument_imports(include=list(INSTRUMENTED)):
        # Everything a target reaches is imported here, inside the instrumentation.
        import hpack  # noqa: F401
        from endpoint_picker import director, grpc_h2, hpack_decoder, requests, restore, scrape  # noqa: F401
        from fuzz import targets

        target = targets.TARGETS[name][0]
        if name == "request":
            targets._director()  # built once, outside the timed loop
    atheris.Setup([sys.argv[0], *libfuzzer_args], target)
    atheris.Fuzz()


def run_target(name: str, seconds: float) -> Result:
    from fuzz.targets import seeds

    corpus = CACHE / "corpus" / name
    seed_dir = CACHE / "seeds" / name
    artifacts = CACHE / "artifacts" / name
    for d in (corpus, seed_dir, artifacts):
        d.mkdir(parents=True, exist_ok=True)
    for i, s in enumerate(seeds(name)):
        (seed_dir / f"seed-{i}").write_bytes(s)
    for old in artifacts.glob("crash-*"):
        old.unlink()
    args = [sys.executable, "-m", "fuzz.run", "--child", name, "--",
            f"-max_total_time={int(seconds)}", "-print_final_stats=1", "-rss_limit_mb=2048", "-timeout=10",
            f"-artifact_prefix={artifacts}/", str(corpus), str(seed_dir)]
    t = time.monotonic()
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, errors="replace",
                          timeout=seconds + 120, env={**os.environ, "PYTHONHASHSEED": "0"})
    elapsed = time.monotonic() - t
    log = proc.stderr
    (CACHE / f"{name}.log").write_text(log)
    execs = _stat(log, "number_of_executed_units")
    done = [m for m in re.finditer(r"^#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)", log, re.M)]
    edges, features, corp = (int(done[-1][2]), int(done[-1][3]), int(done[-1][4])) if done else (0, 0, 0)
    crashes = sorted(str(p) for p in artifacts.glob("crash-*"))
    if proc.returncode != 0 and not crashes:
        crashes = [f"exit {proc.returncode}: see {CACHE / (name + '.log')}"]
    return Result(name, elapsed, execs, edges, features, corp, crashes, proc.returncode)


def _stat(log: str, key: str) -> int:
    m = re.search(rf"stat::{key}:\s+(\d+)", log)
    return int(m[1]) if m else 0


TABLE_HEAD = ("| target | time | executions | rate | coverage (edges) | features | corpus | crashes |\n"
              "|---|---|---|---|---|---|---|---|")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        _child(argv[1], argv[3:] if argv[2:3] == ["--"] else argv[2:])
        return 0
    from fuzz.targets import TARGETS

    p = argparse.ArgumentParser(prog="python -m fuzz.run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("targets", nargs="*", metavar="TARGET", help=f"default: all ({', '.join(TARGETS)})")
    p.add_argument("--seconds", type=float, default=55, help="per target (default 55)")
    p.add_argument("--report", type=Path, help="write the figures as a markdown table to this file")
    args = p.parse_args(argv)
    unknown = [t for t in args.targets if t not in TARGETS]
    if unknown:
        p.error(f"unknown target {unknown[0]!r}; known: {', '.join(TARGETS)}")
    results = []
    print(TABLE_HEAD, flush=True)
    for name in args.targets or list(TARGETS):
        r = run_target(name, args.seconds)
        results.append(r)
        print(r.row, flush=True)
        for c in r.crashes:
            print(f"  crash: {c}", flush=True)
    if args.report:
        args.report.write_text("\n".join([TABLE_HEAD, *(r.row for r in results)]) + "\n")
    return 1 if any(r.crashes for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
