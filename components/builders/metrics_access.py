"""Metrics access for Google Cloud Managed Prometheus (pure): seed 001 step 5 plus PodMonitoring.

RBAC (names exactly as seed 001): a ClusterRole allowed to GET the ``/metrics`` non-resource URL,
a ServiceAccount bound to it, a long-lived token Secret for that account, and a ClusterRole +
binding that let GMP's collector (``gmp-system/collector``) read only that Secret. PodMonitoring
objects scrape the model servers and the pickers with that token as a Bearer credential (as the
GIE chart's GKE monitoring option does), so endpoints that require authorization work too.
"""

from __future__ import annotations

from typing import Any

METRICS_READER_ROLE = "inference-gateway-metrics-reader"
METRICS_READER_SA = "inference-gateway-sa-metrics-reader"
METRICS_READER_BINDING = "inference-gateway-sa-metrics-reader-role-binding"
METRICS_READER_SECRET = "inference-gateway-sa-metrics-reader-secret"
SECRET_READ_ROLE = "inference-gateway-sa-metrics-reader-secret-read"
SECRET_READ_BINDING = "gmp-system:collector:inference-gateway-sa-metrics-reader-secret-read"
RBAC = "rbac.authorization.k8s.io"


def metrics_reader_role() -> dict[str, Any]:
    return {"metadata": {"name": METRICS_READER_ROLE}, "rules": [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]}


def metrics_reader_service_account(namespace: str) -> dict[str, Any]:
    return {"metadata": {"name": METRICS_READER_SA, "namespace": namespace}}


def metrics_reader_binding(namespace: str) -> dict[str, Any]:
    return {
        "metadata": {"name": METRICS_READER_BINDING},
        "subjects": [{"kind": "ServiceAccount", "name": METRICS_READER_SA, "namespace": namespace}],
        "roleRef": {"kind": "ClusterRole", "name": METRICS_READER_ROLE, "apiGroup": RBAC},
    }


def metrics_reader_token_secret(namespace: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": METRICS_READER_SECRET,
            "namespace": namespace,
            "annotations": {"kubernetes.io/service-account.name": METRICS_READER_SA},
        },
        "type": "kubernetes.io/service-account-token",
    }


def secret_read_role() -> dict[str, Any]:
    return {
        "metadata": {"name": SECRET_READ_ROLE},
        "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch"], "resourceNames": [METRICS_READER_SECRET]}],
    }


def secret_read_binding() -> dict[str, Any]:
    return {
        "metadata": {"name": SECRET_READ_BINDING},
        "roleRef": {"name": SECRET_READ_ROLE, "kind": "ClusterRole", "apiGroup": RBAC},
        "subjects": [{"name": "collector", "namespace": "gmp-system", "kind": "ServiceAccount"}],
    }


def pod_monitoring(
    name: str,
    namespace: str,
    match_labels: dict[str, str],
    port: int | str,
    path: str = "/metrics",
    interval: str = "15s",
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A PodMonitoring (monitoring.googleapis.com/v1) authorised with the metrics-reader token."""
    return {
        "apiVersion": "monitoring.googleapis.com/v1",
        "kind": "PodMonitoring",
        # No empty `labels: {}`: the provider stores none, so every preview would show it "added".
        "metadata": {"name": name, "namespace": namespace, **({"labels": dict(labels)} if labels else {})},
        "spec": {
            "selector": {"matchLabels": dict(match_labels)},
            "endpoints": [
                {
                    "port": port,
                    "path": path,
                    "interval": interval,
                    "authorization": {
                        "type": "Bearer",
                        "credentials": {"secret": {"name": METRICS_READER_SECRET, "key": "token"}},
                    },
                }
            ],
        },
    }
