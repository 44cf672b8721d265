"""GKE policies per InferencePool (pure): HealthCheckPolicy and GCPBackendPolicy.

Both target the InferencePool (group ``inference.networking.k8s.io``), as the GIE chart's GKE
provider does. HealthCheckPolicy always sets ``portSpecification: USE_FIXED_PORT`` with ``port``:
the GKE CRD's CEL rule rejects ``port`` when the specification is unset (= USE_SERVING_PORT).
GCPBackendPolicy ``logging.sampleRate`` is an integer in [0, 1e6] (the CRD divides it by 1e6), so
the config's 0-1 fraction is scaled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..config.serving import BackendPolicyConfig

POOL_GROUP = "inference.networking.k8s.io"
SAMPLE_RATE_SCALE = 1_000_000


@dataclass(frozen=True)
class HealthProbe:
    """Where the load balancer checks a model-server pod: the runtime's HTTP port and path."""

    port: int
    path: str


def pool_target_ref(pool: str) -> dict[str, str]:
    return {"group": POOL_GROUP, "kind": "InferencePool", "name": pool}


def health_check_policy(pool: str, namespace: str, probe: HealthProbe, policy: BackendPolicyConfig, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "networking.gke.io/v1",
        "kind": "HealthCheckPolicy",
        "metadata": {"name": pool, "namespace": namespace, "labels": dict(labels or {})},
        "spec": {
            "targetRef": pool_target_ref(pool),
            "default": {
                "checkIntervalSec": policy.health_check_interval_seconds,
                "timeoutSec": policy.health_check_timeout_seconds,
                "logConfig": {"enabled": True},
                "config": {
                    "type": "HTTP",
                    "httpHealthCheck": {
                        "portSpecification": "USE_FIXED_PORT",
                        "port": probe.port,
                        "requestPath": probe.path,
                    },
                },
            },
        },
    }


def sample_rate(fraction: float) -> int:
    return int(round(fraction * SAMPLE_RATE_SCALE))


def backend_policy(pool: str, namespace: str, policy: BackendPolicyConfig, labels: dict[str, str] | None = None) -> dict[str, Any]:
    logging: dict[str, Any] = {"enabled": policy.logging_sample_rate > 0}
    if policy.logging_sample_rate > 0:
        logging["sampleRate"] = sample_rate(policy.logging_sample_rate)
    return {
        "apiVersion": "networking.gke.io/v1",
        "kind": "GCPBackendPolicy",
        "metadata": {"name": pool, "namespace": namespace, "labels": dict(labels or {})},
        "spec": {
            "targetRef": pool_target_ref(pool),
            "default": {"timeoutSec": policy.timeout_seconds, "logging": logging},
        },
    }
