"""`igw up` on a running stack: apply a new render safely (seed 004's update rules).

* The old config serves until the new one is ready: the supervisor applies a render without
  dropping what runs (rollout.py: new pods join once ready, leaving ones drain first).
* One update at a time: the caller holds the stack's update lock (update_lock.py).
* An endpoint is never converted to or from an external model (``conversion_problems``).
* Ctrl-C, ``igw up --cancel`` (from another terminal), a failed or a timed-out update: the
  supervisor abandons the reload in progress (``CANCEL_SIGNAL``) and the last good config is
  applied again, so the stack ends on a config that was ready.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any, Callable

import yaml

from components.config.external import conversion_problems

from ..endpoint_state import endpoint_kinds
from .rendered_objects import load_manifests
from .state import alive, read_state
from .supervisor import CANCEL_SIGNAL, RELOAD_SIGNAL
from .update_lock import UpdateLock, holder, last_good, read_outcome, record_outcome, save_last_good

Out = Callable[[str], None]


def conversions(state_dir: Path, manifests: Path, paths: dict[str, str] | None) -> list[str]:
    """Seed 004's rule against the last good config of the running stack."""
    good = last_good(state_dir)
    if good is None:
        return []
    return conversion_problems(endpoint_kinds(load_manifests(good[0])), endpoint_kinds(load_manifests(manifests)), paths)


def _request(state_dir: Path, pid: int, manifests: Path, port: int | None, time_scale: float | None) -> None:
    req: dict[str, Any] = {"manifests": str(manifests.resolve())}
    if port is not None:
        req["port"] = port
    if time_scale is not None:
        req["time_scale"] = time_scale
    (state_dir / "reload.json").write_text(yaml.safe_dump(req))
    os.kill(pid, RELOAD_SIGNAL)


def _wait(state_dir: Path, before: int, deadline: float) -> dict[str, Any] | None:
    """The state once the supervisor finished the reload after generation ``before``, or None."""
    while time.monotonic() < deadline:
        cur = read_state(state_dir) or {}
        if int(cur.get("generation", 0)) > before and cur.get("status") == "ready":
            return cur
        if not alive(cur.get("supervisor_pid")):
            return None
        time.sleep(0.1)
    return None


def rollback(state_dir: Path, pid: int, lock: UpdateLock, timeout: float, out: Out) -> dict[str, Any] | None:
    """Apply the last good config again; the state after it, or None."""
    good = last_good(state_dir)
    if good is None:
        out("  rollback  no last good config recorded; the running generation stays as it is")
        return None
    lock.relabel("rollback")
    before = int((read_state(state_dir) or {}).get("generation", 0))
    out(f"  rollback  applying the last good config (generation {good[1]}) ...")
    _request(state_dir, pid, good[0], None, None)
    return _wait(state_dir, before, time.monotonic() + timeout)


def apply_update(stack: str, state_dir: Path, state: dict[str, Any], manifests: Path, lock: UpdateLock, *,
                 port: int | None, time_scale: float | None, timeout: float, out: Out) -> tuple[int, dict[str, Any] | None]:
    """Apply ``manifests`` to the running stack; (exit code, final state)."""
    pid = int(state["supervisor_pid"])
    before = int(state.get("generation", 0))
    if last_good(state_dir) is None and state.get("status") == "ready":
        save_last_good(state_dir, Path(state["manifests_dir"]), before)  # a stack started before this module
    out(f"  apply     stack {stack} is running (pid {pid}): applying the new render ...")
    _request(state_dir, pid, manifests, port, time_scale)
    try:
        cur = _wait(state_dir, before, time.monotonic() + timeout)
        reason = None if cur is not None else f"not confirmed within {timeout:.0f}s"
    except KeyboardInterrupt:
        cur, reason = None, "cancelled"
        out("  cancel    the update is being cancelled ...")
    if cur is None:  # cancelled or timed out: abandon what is applying, then roll back
        os.kill(pid, CANCEL_SIGNAL)
        _wait(state_dir, before, time.monotonic() + timeout)
        after = rollback(state_dir, pid, lock, timeout, out)
        outcome = "cancelled" if reason == "cancelled" else "timed-out"
        record_outcome(state_dir, outcome, generation=before + 1, error=reason, rolled_back=after is not None,
                       rolled_back_to=(last_good(state_dir) or (None, None))[1])
        out(f"error: the update was {outcome.replace('-', ' ')}; "
            + ("the last good config is serving again" if after else "check `igw status`"))
        return (130 if reason == "cancelled" else 1), after
    res = cur.get("last_reload") or {}
    if res.get("ok"):
        save_last_good(state_dir, manifests, int(cur.get("generation", before + 1)))
        record_outcome(state_dir, "applied", generation=int(cur.get("generation", 0)))
        for line in res.get("summary") or []:
            out(f"            {line}")
        return 0, cur
    out(f"error: the change was not applied: {res.get('error')}")
    after = rollback(state_dir, pid, lock, timeout, out)
    record_outcome(state_dir, "cancelled" if res.get("cancelled") else "failed", generation=res.get("generation"),
                   error=res.get("error"), rolled_back=after is not None, rolled_back_to=(last_good(state_dir) or (None, None))[1])
    if after is not None:
        out("            the last good config is serving (rolled back)")
    return 1, after


def cancel(stack: str, state_dir: Path, timeout: float, out: Out) -> int:
    """`igw up --cancel`: interrupt the `igw up` applying an update; it rolls back and ends."""
    rec = holder(state_dir)
    if rec is None:
        out(f"igw up --cancel: stack {stack!r} has no update in progress")
        return 0
    if rec.kind == "start":
        out(f"error: {rec.describe()} is starting the stack, not updating it; stop it with `igw down --stack {stack}`")
        return 1
    out(f"igw up --cancel: cancelling {rec.describe()} ...")
    os.kill(rec.pid, signal.SIGINT)
    deadline = time.monotonic() + timeout
    while holder(state_dir) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    if holder(state_dir) is not None:
        out("error: the update did not finish its rollback in time; see `igw status`")
        return 1
    res = read_outcome(state_dir) or {}
    out(f"igw up --cancel: the update ended as {res.get('outcome', 'unknown')}"
        + (f"; rolled back to generation {res.get('rolled_back_to')}" if res.get("rolled_back") else ""))
    return 0
