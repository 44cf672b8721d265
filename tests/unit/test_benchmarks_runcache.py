"""The virtual-time run cache's code version: code changes invalidate runs, results and prose do not."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from benchmarks import runcache


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True,
                   capture_output=True)


@pytest.fixture()
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for path, text in {"benchmarks/evaluation.py": "x = 1\n", "benchmarks/README.md": "# b\n",
                       "benchmarks/results/evaluation.json": "{}\n", "picker/p.py": "p = 1\n",
                       "simulator/s.py": "s = 1\n", "docs.md": "d\n"}.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "init")
    monkeypatch.setattr(runcache, "ROOT", tmp_path)
    return tmp_path


def test_results_and_benchmark_readme_do_not_change_the_code_version(repo: Path):
    before = runcache.code_version()
    (repo / "benchmarks/results/evaluation.json").write_text('{"cells": {}}\n')
    (repo / "benchmarks/results/new.png").write_bytes(b"png")
    (repo / "benchmarks/README.md").write_text("# b, edited\n")
    (repo / "docs.md").write_text("d, edited\n")
    assert runcache.code_version() == before
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "results")
    assert runcache.code_version() == before


@pytest.mark.parametrize("path", ["benchmarks/evaluation.py", "picker/p.py", "simulator/s.py",
                                  "benchmarks/vtime/new.py"])
def test_a_code_change_changes_the_code_version_uncommitted_and_committed(repo: Path, path: str):
    before = runcache.code_version()
    (repo / path).parent.mkdir(parents=True, exist_ok=True)
    (repo / path).write_text("changed = True\n")
    dirty = runcache.code_version()
    assert dirty != before
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "code")
    assert runcache.code_version() != before
