"""One update at a time per local stack, and the last good config to roll back to (seed 004).

* ``UpdateLock``: an ``flock`` on ``<state>/update.lock`` held by the ``igw up`` that starts or
  updates the stack, with a record of who holds it (pid, kind, start time, generation). A second
  ``igw up`` is refused with a message naming the running update; the kernel drops the lock when
  its holder dies, so a crashed ``igw up`` never blocks the next one.
* ``<state>/last-good/``: the manifests of the last config that became ready (after a start and
  after each applied update); a cancelled or failed update is rolled back to it.
* ``<state>/last-update.json``: how the last update ended (applied, failed, cancelled, timed out,
  and what it rolled back to), which ``igw status`` reports as ``config_update``.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

LOCK_FILE = "update.lock"
LAST_GOOD = "last-good"
LAST_UPDATE = "last-update.json"


class UpdateRefused(RuntimeError):
    """Another ``igw up`` holds the stack's update lock."""


@dataclass(frozen=True)
class UpdateRecord:
    pid: int
    kind: str
    """start | update | rollback"""
    stack: str
    started_at: float
    from_generation: int | None = None

    def describe(self) -> str:
        at = time.strftime("%H:%M:%S", time.localtime(self.started_at))
        gen = f", from generation {self.from_generation}" if self.from_generation is not None else ""
        what = {"start": "the start", "update": "an update", "rollback": "a rollback"}.get(self.kind, self.kind)
        return f"{what} of stack {self.stack!r} by igw up (pid {self.pid}, started {at}{gen})"


def _read(path: Path) -> UpdateRecord | None:
    try:
        return UpdateRecord(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


class UpdateLock:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LOCK_FILE
        self.fd: int | None = None
        self.record: UpdateRecord | None = None

    def acquire(self, record: UpdateRecord) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            other = _read(self.path)
            running = other.describe() if other else "another igw up"
            raise UpdateRefused(
                f"stack {record.stack!r} is already being changed: {running} is applying; wait for it to finish, or "
                f"cancel it with `igw up --stack {record.stack} --cancel` (it rolls back to the last good config)"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(asdict(record)).encode())
        self.fd, self.record = fd, record

    def relabel(self, kind: str) -> None:
        """The holder moves on (an update becoming its rollback)."""
        assert self.fd is not None and self.record is not None
        self.record = UpdateRecord(**{**asdict(self.record), "kind": kind})
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, json.dumps(asdict(self.record)).encode(), 0)

    def release(self) -> None:
        if self.fd is None:
            return
        os.ftruncate(self.fd, 0)
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = None

    def __enter__(self) -> UpdateLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def holder(state_dir: Path) -> UpdateRecord | None:
    """Who holds the stack's update lock now, or None."""
    path = state_dir / LOCK_FILE
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read(path) or UpdateRecord(0, "update", "?", 0.0)
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def save_last_good(state_dir: Path, manifests: Path, generation: int) -> None:
    """Keep a copy of a config that became ready (replaced atomically)."""
    tmp = state_dir / f".{LAST_GOOD}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(manifests.resolve(), tmp / "manifests")
    resources = manifests.resolve().parent / "resources.json"
    if resources.exists():
        shutil.copy(resources, tmp / "resources.json")
    (tmp / "generation").write_text(str(generation))
    old = state_dir / f".{LAST_GOOD}.old"
    shutil.rmtree(old, ignore_errors=True)
    if (state_dir / LAST_GOOD).exists():
        os.replace(state_dir / LAST_GOOD, old)
    os.replace(tmp, state_dir / LAST_GOOD)
    shutil.rmtree(old, ignore_errors=True)


def last_good(state_dir: Path) -> tuple[Path, int] | None:
    """(manifests dir, generation) of the last good config, or None."""
    d = state_dir / LAST_GOOD
    try:
        return d / "manifests", int((d / "generation").read_text())
    except (OSError, ValueError):
        return None


def record_outcome(state_dir: Path, outcome: str, **details: Any) -> None:
    tmp = state_dir / f".{LAST_UPDATE}.tmp"
    tmp.write_text(json.dumps({"outcome": outcome, "at": time.time(), **details}, sort_keys=True))
    os.replace(tmp, state_dir / LAST_UPDATE)


def read_outcome(state_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((state_dir / LAST_UPDATE).read_text())
    except (OSError, ValueError):
        return None
