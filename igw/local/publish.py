"""What the supervisor publishes for its children, as Kubernetes' endpoints controller would.

Files are replaced atomically, so a reader never sees half of one:
  * `manifests` -> `manifests.<generation>/`: the render the pickers read (`install_manifests`);
  * `endpoints-<pool>.yaml`: every pod of a pool with its readiness, for the pool's pickers
    (`write_pods_file`, which returns the pool's ready endpoints for Envoy's EDS).
`ready_endpoints` and `picker_endpoints` are the addresses Envoy's clusters get: ready pods'
target ports, and per pool its ready pickers (what the picker Service's endpoints would be).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import yaml

from .pickers import endpoints_file
from .plan import LocalPlan
from .plan_pools import Pool
from .process import Proc


def install_manifests(state_dir: Path, source: Path, generation: int) -> Path:
    """Copy a render into manifests.<gen>/ and atomically repoint the `manifests` symlink the
    pickers read, so they never see a half-updated directory."""
    gen_dir = state_dir / f"manifests.{generation}"
    if gen_dir.exists():
        shutil.rmtree(gen_dir)
    shutil.copytree(source, gen_dir, copy_function=shutil.copy)  # fresh mtimes: pickers reload on mtime
    link = state_dir / "manifests"
    tmp = state_dir / ".manifests.tmp"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(gen_dir.name)
    os.replace(tmp, link)
    for old in state_dir.glob("manifests.*"):
        if old != gen_dir and old.name != f"manifests.{generation - 1}":
            shutil.rmtree(old, ignore_errors=True)
    return link


def write_pods_file(state_dir: Path, pool: Pool, sims: dict[str, Proc]) -> list[str]:
    """The pool's pods → its pickers' endpoints file (rewritten only when it changes); returns
    the ready pods' `address:port` endpoints."""
    pods, eps = [], []
    for r in pool.replicas:
        p = sims.get(r.name)
        ready = bool(p and p.ready)
        pods.append({"name": r.name, "namespace": pool.namespace, "address": r.address,
                     "labels": r.labels, "ready": ready})
        if ready:
            eps += [f"{r.address}:{port}" for port in pool.target_ports]
    f = endpoints_file(state_dir, pool.name)
    body = yaml.safe_dump({"pods": pods}, sort_keys=False)
    if not f.exists() or f.read_text() != body:
        tmp = f.with_name("." + f.name + ".tmp")
        tmp.write_text(body)
        os.replace(tmp, f)
    return eps


def ready_endpoints(plan: LocalPlan, sims: dict[str, Proc]) -> dict[str, list[str]]:
    return {pool.name: [f"{r.address}:{port}" for r in pool.replicas
                        if sims.get(r.name) and sims[r.name].ready for port in pool.target_ports]
            for pool in plan.pools.values()}


def picker_endpoints(pickers: dict[str, list[Proc]]) -> dict[str, list[str]]:
    """Per pool, its ready pickers' ext_proc addresses: what the picker Service's endpoints
    would be (with leader election, the leader only)."""
    return {pool: [f"127.0.0.1:{p.meta['grpc_port']}" for p in group if p.ready and p.running()]
            for pool, group in pickers.items()}
