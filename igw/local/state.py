"""The state of one local stack: `.igw/local/<stack>/state.json` plus its files and logs.

state.json is written atomically by the supervisor; `igw up` (again), `igw down` and the tests
read it. It records every process (pid = its process group id), the ports, the gateway URL and
the status: starting → ready → stopping → stopped (or failed, with `error`).
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

from ..stackfile import ROOT


def default_state_dir(stack: str) -> Path:
    return ROOT / ".igw" / "local" / stack


def read_state(state_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((state_dir / "state.json").read_text())
    except (OSError, ValueError):
        return None


def write_state(state_dir: Path, state: dict[str, Any]) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    tmp = state_dir / ".state.json.tmp"
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True))
    os.replace(tmp, state_dir / "state.json")


def alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped) counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def supervisor_alive(state: dict[str, Any] | None) -> bool:
    return bool(state) and state.get("status") not in ("stopped", "failed") and alive(state.get("supervisor_pid"))


def kill_group(pid: int, sig: int = signal.SIGTERM) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def kill_recorded(state: dict[str, Any], timeout: float = 5.0) -> list[str]:
    """Last resort for `igw down` when the supervisor is gone: TERM then KILL every recorded
    process group. Returns the names that were still running."""
    procs = [p for p in (state.get("processes") or {}).values() if alive(p.get("pid"))]
    for p in procs:
        kill_group(p["pid"], signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(alive(p["pid"]) for p in procs):
        time.sleep(0.05)
    for p in procs:
        if alive(p["pid"]):
            kill_group(p["pid"], signal.SIGKILL)
    return [p["name"] for p in procs]
