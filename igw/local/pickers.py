"""One endpoint picker per InferencePool: its process (file discovery) and its readiness.

The picker reads the rendered objects from the stack's `manifests` symlink and the pool's ready
pods from `endpoints-<pool>.yaml` (written by the supervisor); its config is the pool's rendered
`picker.yaml` adapted for local mode (`Pool.local_picker_config`).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import yaml

from .plan import Pool
from .process import Proc, free_port


def endpoints_file(state_dir: Path, pool: str) -> Path:
    return state_dir / f"endpoints-{pool}.yaml"


def picker_fingerprint(pool: Pool) -> str:
    """Changes when the pool's picker must be replaced (namespace or picker config)."""
    cfg = yaml.safe_dump(pool.local_picker_config(), sort_keys=True)
    return hashlib.sha256(repr((pool.namespace, cfg)).encode()).hexdigest()[:12]


def picker_proc(state_dir: Path, pool: Pool, name: str | None = None) -> Proc:
    cfg_path = state_dir / f"picker-{pool.name}.yaml"
    cfg_path.write_text(yaml.safe_dump(pool.local_picker_config(), sort_keys=False))
    grpc_port, health_port, metrics_port = free_port(), free_port(), free_port()
    argv = [sys.executable, "-m", "endpoint_picker.main", "--pool-name", pool.name,
            "--pool-namespace", pool.namespace, "--config-file", str(cfg_path), "--discovery", "files",
            "--manifests-dir", str(state_dir / "manifests"), "--endpoints-file", str(endpoints_file(state_dir, pool.name)),
            "--grpc-port", str(grpc_port), "--grpc-health-port", str(health_port),
            "--metrics-port", str(metrics_port), "--bind-address", "127.0.0.1", "--log-level", "warning",
            "--drain-timeout", "60"]
    name = name or f"{pool.name}-epp"
    p = Proc(name, "picker", argv, state_dir / "logs" / f"{name}.log")
    p.meta = {"pool": pool.name, "grpc_port": grpc_port, "health_port": health_port, "metrics_port": metrics_port,
              "failure_mode": pool.failure_mode, "config_fp": picker_fingerprint(pool)}
    return p


def picker_ready(p: Proc) -> bool:
    """The picker's gRPC health service says `readiness` is SERVING."""
    if not p.running():
        return False
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{p.meta['health_port']}") as ch:
        try:
            resp = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service="readiness"), timeout=1)
            return resp.status == health_pb2.HealthCheckResponse.SERVING
        except grpc.RpcError:
            return False
