"""Endpoint state of a local stack: what `igw status --stack S` reads when the stack runs here.

Per pool (igw/endpoint_state.py) from state.json: its pods are the processes of its replicas
(ready as the supervisor's readiness probes last saw them; a pod that exited and keeps exiting,
3 restarts or more, fails the deployment), its picker is ready when one of its pickers is. The
endpoints come from the running generation's manifests. ``config_update`` comes from the update
lock (an update or its rollback applying: ``IN_PROGRESS``) and from how the last update ended
(``UPDATE_FAILED``, ``UPDATE_CANCELED``; update_lock.py). A stopped stack's endpoints are all
``NOT_READY``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..endpoint_state import (
    IN_PROGRESS,
    NOT_UPDATING,
    UPDATE_CANCELED,
    UPDATE_FAILED,
    PoolHealth,
    endpoint_states,
    report_json,
    specs_from_objects,
)
from .rendered_objects import load_manifests
from .state import read_state, supervisor_alive
from .update_lock import holder, read_outcome

CRASH_LOOP_RESTARTS = 3


class StatusError(RuntimeError):
    pass


def _pod_note(name: str, proc: dict[str, Any] | None) -> str:
    if proc is None:
        return f"pod {name} is not running"
    if not proc.get("running"):
        return f"pod {name} exited (restarts: {proc.get('restarts', 0)}); restarting"
    return f"pod {name} is starting"


def pool_health(state: dict[str, Any]) -> dict[str, PoolHealth]:
    procs = state.get("processes") or {}
    alive = supervisor_alive(state)
    out = {}
    for name, pool in (state.get("pools") or {}).items():
        replicas = list(pool.get("replicas") or [])
        if not alive:
            out[name] = PoolHealth(len(replicas), 0, False, note=f"the local stack is not running (status {state.get('status')})")
            continue
        ready = [r for r in replicas if (procs.get(r) or {}).get("ready") and (procs.get(r) or {}).get("running")]
        waiting = [r for r in replicas if r not in ready]
        looping = [r for r in waiting if int((procs.get(r) or {}).get("restarts", 0)) >= CRASH_LOOP_RESTARTS]
        failed = (f"pod {looping[0]} keeps exiting ({procs[looping[0]]['restarts']} restarts; log {procs[looping[0]].get('log')})"
                  if looping and not ready else None)
        pickers = [procs.get(p) or {} for p in pool.get("pickers") or []]
        at_zero = any(name in a.get("pools", []) and a.get("min_replicas") == 0 and a.get("replicas") == 0
                      for a in (state.get("autoscaling") or {}).values())
        out[name] = PoolHealth(len(replicas), len(ready), any(p.get("ready") and p.get("running") for p in pickers),
                               failed=failed, note=_pod_note(waiting[0], procs.get(waiting[0])) if waiting else "",
                               scaled_to_zero=at_zero and not replicas)
    return out


def config_update(state_dir: Path, state: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The stack's config_update and what it is based on."""
    rec = holder(state_dir)
    last = read_outcome(state_dir)
    info: dict[str, Any] = {"generation": state.get("generation"), "status": state.get("status"),
                            "in_progress": rec.describe() if rec else None,
                            "last_update": (last or {}).get("outcome")}
    if rec is not None and rec.kind in ("update", "rollback") or state.get("status") == "reloading":
        return IN_PROGRESS, info
    outcome = (last or {}).get("outcome")
    if outcome in ("failed", "timed-out"):
        return UPDATE_FAILED, info
    if outcome == "cancelled":
        return UPDATE_CANCELED, info
    return NOT_UPDATING, info


def local_report(stack: str, state_dir: Path) -> dict[str, Any]:
    state = read_state(state_dir)
    if state is None:
        raise StatusError(f"stack {stack!r} has not run here ({state_dir / 'state.json'} does not exist); start it with "
                          f"`igw up --stack {stack}`, or read a cluster with --kubeconfig")
    manifests = Path(state.get("manifests_dir") or state_dir / "manifests")
    objects = load_manifests(manifests) if manifests.exists() else []
    endpoints, _ = specs_from_objects(objects)
    update, info = config_update(state_dir, state)
    states = endpoint_states(endpoints, pool_health(state), update)
    return report_json(stack, "local", states, info)
