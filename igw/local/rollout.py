"""Applying a new render to a running local stack without dropping requests in flight.

* manifests: new generation dir + symlink swap → pickers hot-reload objectives/rewrites;
* a pool whose picker.yaml (or picker replica count) changed gets new pickers on new ports; once
  one of them leads, Envoy's picker cluster moves to it (EDS) and the old ones drain their open
  streams on SIGTERM (a leader releases its Lease first, so a new standby takes over at once);
* new replicas start and join once ready; removed (or changed) replicas leave the endpoints first,
  then stop; a changed replica is replaced one at a time (the next leaves once the new one is
  ready: a pool of several pods keeps serving, one of a single pod pauses while it restarts);
  Envoy routes/clusters/listeners change through xDS files.

On any error the running generation keeps serving and the error is reported in state.json.
"""

from __future__ import annotations

import dataclasses
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from .pickers import picker_fingerprint, start_group, wait_group_ready
from .plan import LocalPlan, build_plan
from .plan_skipped import cloud_resources
from .process import Proc
from .publish import install_manifests, picker_endpoints, ready_endpoints
from .rendered_objects import load_manifests
from .replicas import replica_fingerprint

if TYPE_CHECKING:
    from .supervisor import Supervisor

PICKER_RETIRE_S = 65.0
"""How long a replaced picker may keep serving its open streams (its --drain-timeout is 60 s)."""


def reload(sup: Supervisor) -> None:
    """Apply the render named in <state dir>/reload.json (written by `igw up` before SIGUSR1)."""
    req_file = sup.dir / "reload.json"
    sup.cancel_requested = False  # a cancel applies to the reload in progress only
    try:
        req = yaml.safe_load(req_file.read_text())
        source = Path(req["manifests"])
        sup.status = "reloading"
        sup.save()
        new = build_plan(load_manifests(source), port=int(req.get("port", sup.o.port)),
                         address_base=sup.o.address_base)
        keep_addresses(new, sup)
        sup.autoscaler.adopt(new)  # autoscaled Deployments keep their running count and pod slots
        new.skipped += cloud_resources(source.resolve().parent / "resources.json")
        if req.get("time_scale") is not None and float(req["time_scale"]) != sup.o.time_scale:
            sup.o.time_scale = float(req["time_scale"])
            for p in sup.sims.values():  # running replicas switch at once
                sup.replicas.set_time_scale(p, sup.o.time_scale)
        sup.o.port = int(req.get("port", sup.o.port))
        summary = apply_plan(sup, new, source)
        sup.last_reload = {"generation": sup.generation, "ok": True, "summary": summary, "at": time.time()}
        sup.error = None
    except Exception as e:  # keep serving the old generation
        sup.last_reload = {"generation": sup.generation + 1, "ok": False, "error": str(e), "at": time.time(),
                           "cancelled": sup.cancel_requested}
        sup.generation += 1  # the requester waits for the generation to move
    sup.status = "ready"
    sup.save()


def keep_addresses(new: LocalPlan, sup: Supervisor) -> None:
    """A pod keeps its address across renders (as a pod keeps its IP): build_plan numbers pods in
    render order, so a Deployment added before others would otherwise shift their addresses (and
    a new pod could take an address a running one still holds). Pods that exist keep theirs; new
    ones get the first addresses no running or kept pod uses."""
    import ipaddress

    current = {name: p.meta.get("address") for name, p in sup.sims.items()}
    taken = {a for a in current.values() if a}
    fresh = ipaddress.IPv4Address(sup.o.address_base)
    for r in new.replicas:
        if current.get(r.name):
            r.address = current[r.name]
    for r in new.replicas:
        if not current.get(r.name):
            while str(fresh) in taken:
                fresh += 1
            r.address = str(fresh)
            taken.add(r.address)


def apply_plan(sup: Supervisor, new: LocalPlan, source: Path) -> list[str]:
    old = sup.plan
    assert old is not None
    summary: list[str] = []
    sup.generation += 1
    # 1. new replicas (and changed ones, replaced under a new process) start first
    new_reps = {r.name: r for r in new.replicas}
    started: list[Proc] = []
    for name, r in new_reps.items():
        cur = sup.sims.get(name)
        if cur is not None and cur.meta.get("fingerprint") == replica_fingerprint(r):
            continue
        if cur is not None:
            cur.ready = False  # leaves the endpoints before it stops
            sup.publish_endpoints()
            drain(sup, cur)
            cur.stop()
        p = sup.replicas.proc(r, sup.logs)
        p.start()
        sup.sims[name] = p
        if cur is not None:
            # One pod at a time, as a RollingUpdate with maxUnavailable 1: the replaced pod is ready
            # before the next one leaves, so a Deployment of several pods never stops serving.
            sup.wait_ready("replicas", [p], sup.replicas.ready, sup.replica_timeout())
            sup.publish_endpoints()
        else:
            started.append(p)
        summary.append(f"replica {name} {'replaced' if cur else 'added'}")
    removed = [sup.sims[n] for n in list(sup.sims) if n not in new_reps]
    sup.plan = dataclasses.replace(new)  # endpoints publishing now follows the new plan
    if started:
        sup.wait_ready("replicas", started, sup.replicas.ready, sup.replica_timeout())
    # 2. manifests for the pickers (rewrites, objectives, pool selector)
    install_manifests(sup.dir, source, sup.generation)
    # 3. pickers: new pools / changed picker config → new pickers next to the old ones
    old_pickers: list[Proc] = []
    for pool in new.pools.values():
        cur = sup.pickers.get(pool.name)
        if cur and all(p.meta.get("config_fp") == picker_fingerprint(pool) for p in cur):
            continue
        group = start_group(sup.dir, pool, "" if not cur else f"-g{sup.generation}")
        if cur and pool.picker.leader_election:
            # The old leader holds the Lease: the new group stands by until it is handed over.
            for p in cur:
                p.ready = False
                p.signal(signal.SIGTERM)
        problem = wait_group_ready(group, time.monotonic() + sup.o.startup_timeout, lambda: sup.cancel_requested)
        if problem:
            for p in group:
                p.stop()
            raise RuntimeError(problem)
        old_pickers += cur or []
        sup.pickers[pool.name] = group
        summary.append(f"pickers for {pool.name} {'restarted with new config' if cur else 'added'}")
    for name in [n for n in sup.pickers if n not in new.pools]:
        old_pickers += sup.pickers.pop(name)
        summary.append(f"pickers for {name} removed")
    # 4. Envoy: endpoints, clusters, routes, listeners
    for r in removed:
        r.ready = False
    sup.publish_endpoints()
    sup.envoy_files.write_config(new, picker_endpoints(sup.pickers), ready_endpoints(new, sup.sims), sup.o.listen_address,
                                 sup.logs / "access.log")
    sup.wait_envoy_applied()
    if [(l.name, l.local_port) for l in old.listeners] != [(l.name, l.local_port) for l in new.listeners]:
        summary.append("listeners updated")
    if [l.routes for l in old.listeners] != [l.routes for l in new.listeners]:
        summary.append("routes updated")
    if [dataclasses.astuple(m) for m in old.models] != [dataclasses.astuple(m) for m in new.models]:
        summary.append("served models / traffic split updated")
    time.sleep(0.5)  # let Envoy and the pickers pick the files up before old processes go
    # 5. retire what is gone: old pickers drain their streams on SIGTERM
    for p in old_pickers:
        p.signal(signal.SIGTERM)
    for r in removed:
        drain(sup, r)
        r.stop()
        del sup.sims[r.name]
        summary.append(f"replica {r.name} removed")
    # Old pickers finish their open streams in the background (reaped by serve_forever).
    for p in old_pickers:
        p.meta["retire_by"] = time.monotonic() + PICKER_RETIRE_S
        p.name = f"{p.name}-retiring-{sup.generation}"
        sup.retiring.append(p)
    return summary or ["no changes"]


def drain(sup: Supervisor, p: Proc, timeout: float = 30.0) -> None:
    """A replica leaving the pool: it is already out of the endpoints; wait (bounded, like the
    Deployment's preStop + grace period) until it has no running or waiting request."""
    time.sleep(0.5)  # pickers and Envoy poll the files every 0.2 s
    deadline = time.monotonic() + timeout
    while p.running() and time.monotonic() < deadline:
        if sup.replicas.idle(p):
            return
        time.sleep(0.1)
