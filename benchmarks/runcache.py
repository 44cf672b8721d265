"""Finished virtual-time runs, kept on disk so an interrupted evaluation resumes where it stopped.

A run is keyed by everything that decides its result: the cell, the strategy (with its picker
config), the scrape settings, the seed, and the code (git trees of benchmarks/, picker/ and
simulator/ plus any uncommitted change to them). benchmarks/results/ and benchmarks/README.md are
not code: committing results does not invalidate the runs that made them. Changing any of the rest
re-runs a run. The file is `benchmarks/.work/vtime-runs.jsonl` (not committed); delete it to start
over.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PATH = Path(__file__).resolve().parent / ".work" / "vtime-runs.jsonl"
_CODE = ("benchmarks", "picker", "simulator")
_NOT_CODE = ("benchmarks/results", "benchmarks/README.md")   # outputs and prose: committing them keeps the cache


def code_version() -> str:
    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True, timeout=30).stdout

    trees = "".join(line for line in git("ls-tree", "HEAD", *(f"{d}/" for d in _CODE)).splitlines(True)
                    if line.rstrip("\n").split("\t")[-1] not in _NOT_CODE)
    paths = [*_CODE, *(f":(exclude){p}" for p in _NOT_CODE)]
    dirty = git("diff", "HEAD", "--", *paths) + git("ls-files", "--others", "--exclude-standard", "--", *paths)
    return hashlib.sha256((trees + dirty).encode()).hexdigest()[:16]


def key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class RunCache:
    def __init__(self, path: Path = PATH) -> None:
        self.path = path
        self.runs: dict[str, dict[str, Any]] = {}
        if path.exists():
            for line in path.read_text().splitlines():
                try:
                    k, v = json.loads(line)
                except ValueError:
                    continue   # a line cut by an interruption
                self.runs[k] = v

    def get(self, k: str) -> dict[str, Any] | None:
        return self.runs.get(k)

    def put(self, k: str, summary: dict[str, Any]) -> None:
        self.runs[k] = summary
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps([k, summary]) + "\n")
