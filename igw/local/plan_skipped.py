"""What a local run leaves out of a render, and why (pure).

Every rendered object a local process does not read is listed with a reason: cloud-only kinds
(load-balancer extensions and policies, Managed Prometheus, KEDA's credentials), Kubernetes RBAC
and credentials (no API server locally), ConfigMaps no process reads, the picker's Service (a
`picker` process replaces it) and any other cluster object. `cloud_resources` sums up the GCP
side of a render (resources.json), none of which runs locally.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, Collection

from .rendered_objects import object_meta, object_ref

# Objects a local run uses (or that only configure the cluster itself) → not listed as skipped.
_USED_KINDS = {"Gateway", "HTTPRoute", "InferencePool", "InferenceObjective", "InferenceModelRewrite",
               "GCPBackendPolicy", "Deployment", "ConfigMap",
               "ScaledObject"}  # KEDA's: its policy runs on the replica processes (autoscaler.py)
# Kinds that have no local meaning: why they are skipped.
_SKIP_REASONS = {
    "GCPTrafficExtension": "Model Armor / traffic extension runs in Google's load balancer (cloud-only)",
    "GCPRoutingExtension": "routing extension runs in Google's load balancer (cloud-only)",
    "HealthCheckPolicy": "load-balancer health checks are cloud-only; locally the runner probes "
                         "each replica's readinessProbe and the picker scrapes /metrics",
    "GCPGatewayPolicy": "load-balancer policy (cloud-only)",
    "PodMonitoring": "Managed Prometheus (cloud-only); scrape /metrics on each replica directly",
    "TriggerAuthentication": "KEDA's access to Managed Prometheus (cloud-only); locally the autoscaler reads "
                             "the replicas' and pickers' /metrics",
    "CustomResourceDefinition": "no API server locally; the pickers read the objects from files",
    "ServiceAccount": "Kubernetes RBAC and credentials: no API server locally",
    "Secret": "Kubernetes RBAC and credentials: no API server locally",
    "Role": "Kubernetes RBAC and credentials: no API server locally",
    "RoleBinding": "Kubernetes RBAC and credentials: no API server locally",
    "ClusterRole": "Kubernetes RBAC and credentials: no API server locally",
    "ClusterRoleBinding": "Kubernetes RBAC and credentials: no API server locally",
}
PICKER_REPLACED = "runs locally as a `picker` process per pool (file discovery)"


def skipped_objects(objects: list[dict[str, Any]], used_configmaps: Collection[str], pool_names: Collection[str],
                    pickers: Collection[tuple[str, str]]) -> list[tuple[str, str]]:
    """("Kind namespace/name", reason) for every object no local process stands for; `pickers` are
    the (namespace, name) of the pools' picker Deployments and Services."""
    skipped: list[tuple[str, str]] = []
    for o in objects:
        kind = o.get("kind", "")
        ns, name = object_meta(o)
        if kind in _SKIP_REASONS:
            skipped.append((object_ref(o), _SKIP_REASONS[kind]))
        elif kind == "ConfigMap" and name not in used_configmaps and not any(name == f"{p}-epp" for p in pool_names):
            skipped.append((object_ref(o), "not read by a local process"))
        elif kind == "Service" and (ns, name) in pickers:
            skipped.append((object_ref(o), PICKER_REPLACED))
        elif kind not in _USED_KINDS:
            skipped.append((object_ref(o), "cluster object: nothing to run locally"))
    return skipped


def cloud_resources(resources_json: Path) -> list[tuple[str, str]]:
    """Non-Kubernetes resources of a render (resources.json next to manifests/): the GCP side
    (network, cluster, node pools, Model Armor, IAM, monitoring), none of which runs locally.
    Returns skipped entries grouped by resource type."""
    try:
        resources = json.loads(Path(resources_json).read_text())
    except (OSError, ValueError):
        return []
    counts = Counter(r.get("type", "") for r in resources if str(r.get("type", "")).startswith("gcp:"))
    if not counts:
        return []
    listed = ", ".join(f"{t.split(':')[-1]} x{n}" if n > 1 else t.split(":")[-1] for t, n in sorted(counts.items()))
    return [(f"{sum(counts.values())} GCP resources ({listed})",
             "cloud-only: Google Cloud infrastructure (network, GKE, node pools, Model Armor, IAM, monitoring)")]
