"""The endpoint pickers of each InferencePool: their processes (file discovery) and health.

A pool runs as many pickers as its rendered Deployment has replicas. With more than one they
elect a leader through a Lease kept in `lease-<pool>.json` (the Deployment's own
`--ha-enable-leader-election` timings): the leader reports ready and serves, the others keep
their datastore warm and stand by. Each picker reads the rendered objects from the stack's
`manifests` symlink and the pool's ready pods from `endpoints-<pool>.yaml` (written by the
supervisor); its config is the pool's rendered `picker.yaml` adapted for local mode
(`Pool.local_picker_config`).
"""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path
from typing import Callable

import yaml

from .plan_pools import Pool
from .process import Proc, free_port
from .secrets import api_keys_path


def endpoints_file(state_dir: Path, pool: str) -> Path:
    return state_dir / f"endpoints-{pool}.yaml"


def lease_file(state_dir: Path, pool: str) -> Path:
    return state_dir / f"lease-{pool}.json"


def picker_names(pool: Pool, suffix: str = "") -> list[str]:
    """`<pool>-epp` for a single picker, `<pool>-epp-0`, `-1`, ... for replicas."""
    base = f"{pool.name}-epp{suffix}"
    n = pool.picker.replicas
    return [base] if n == 1 else [f"{base}-{i}" for i in range(n)]


def picker_fingerprint(pool: Pool) -> str:
    """Changes when the pool's pickers must be replaced (namespace, picker config, replicas)."""
    cfg = yaml.safe_dump(pool.local_picker_config(), sort_keys=True)
    return hashlib.sha256(repr((pool.namespace, cfg, pool.picker.replicas,
                                pool.picker.leader_election_args)).encode()).hexdigest()[:12]


def picker_proc(state_dir: Path, pool: Pool, name: str) -> Proc:
    cfg_path = state_dir / f"picker-{pool.name}.yaml"
    cfg_path.write_text(yaml.safe_dump(pool.local_picker_config(), sort_keys=False))
    grpc_port, health_port, metrics_port = free_port(), free_port(), free_port()
    argv = [sys.executable, "-m", "endpoint_picker.main", "--pool-name", pool.name,
            "--pool-namespace", pool.namespace, "--config-file", str(cfg_path), "--discovery", "files",
            "--manifests-dir", str(state_dir / "manifests"), "--endpoints-file", str(endpoints_file(state_dir, pool.name)),
            "--grpc-port", str(grpc_port), "--grpc-health-port", str(health_port),
            "--metrics-port", str(metrics_port), "--bind-address", "127.0.0.1", "--log-level", "warning",
            "--drain-timeout", "60"]
    if pool.api_keys:  # the stack's keys from the local secrets source (igw/local/secrets.py)
        argv += ["--api-keys-file", str(api_keys_path(state_dir))]
    if pool.picker.leader_election:
        argv += [*pool.picker.leader_election_args, "--lease-file", str(lease_file(state_dir, pool.name))]
    p = Proc(name, "picker", argv, state_dir / "logs" / f"{name}.log")
    p.meta = {"pool": pool.name, "grpc_port": grpc_port, "health_port": health_port, "metrics_port": metrics_port,
              "failure_mode": pool.failure_mode, "config_fp": picker_fingerprint(pool)}
    return p


def picker_health(p: Proc, service: str, timeout: float = 1.0) -> bool:
    """The picker's gRPC health service says `service` is SERVING within `timeout` seconds."""
    if not p.running():
        return False
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{p.meta['health_port']}") as ch:
        try:
            resp = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
            return resp.status == health_pb2.HealthCheckResponse.SERVING
        except grpc.RpcError:
            return False


def picker_ready(p: Proc) -> bool:
    """`readiness` is SERVING: synced and, with leader election, leading."""
    return picker_health(p, "readiness")


def picker_alive(p: Proc) -> bool:
    """`liveness` is SERVING: the process answers from its event loop (a standby does too)."""
    return picker_health(p, "liveness")


def start_group(state_dir: Path, pool: Pool, suffix: str = "") -> list[Proc]:
    group = [picker_proc(state_dir, pool, name) for name in picker_names(pool, suffix)]
    for p in group:
        p.start()
    return group


def wait_group_ready(group: list[Proc], deadline: float, interrupted: Callable[[], bool] = lambda: False) -> str | None:
    """Wait until every picker of a group answers liveness and one of them is ready (the leader,
    with leader election); sets each one's `ready`. Returns None, or why the group is not ready."""
    while True:
        dead = [p for p in group if not p.running()]
        if dead:
            p = dead[0]
            return (f"picker {p.name} exited with status {p.popen.returncode if p.popen else '?'} while starting; "
                    f"last lines of {p.log}:\n{p.tail()}")
        if all(picker_alive(p) for p in group):
            ready = [picker_ready(p) for p in group]
            if any(ready):
                for p, r in zip(group, ready):
                    p.ready = r
                return None
        if interrupted():
            return "interrupted"
        if time.monotonic() > deadline:
            return (f"no picker of {', '.join(p.name for p in group)} became ready (the leader) in time; "
                    f"last lines of {group[0].log}:\n{group[0].tail()}")
        time.sleep(0.05)
