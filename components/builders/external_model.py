"""Kubernetes objects of an external model's egress proxy (pure): Deployment, key Secret or
SecretProviderClass, ServiceAccount, PodDisruptionBudget, NetworkPolicies, model rewrite.

The proxy (``<pool>-egress``, selected by the endpoint's InferencePool) runs Envoy's distroless
image as its non-root user with a read-only root filesystem, no capabilities and no service
account token, and holds the provider key only as a mounted file:

- ``{{secrets/<scope>/<key>}}``: a Kubernetes Secret ``<pool>-provider-key`` created from the
  Pulumi secret (encrypted in state, masked in previews), mounted 0440;
- a Secret Manager version: a SecretProviderClass (``provider: gke``, GKE's Secret Manager add-on)
  mounted through the ``secrets-store-gke.csi.k8s.io`` driver with the pod's Workload Identity;
  the key never passes through Pulumi.

Egress is limited to the provider's host: a NetworkPolicy allows only DNS out (ingress only from
the gateway's proxy-only subnets and Google's health checks), and an FQDNNetworkPolicy
(``networking.gke.io/v1alpha1``, GKE Dataplane V2 with FQDN network policy enabled) allows TCP
to the provider's host and port, nothing else. An IP-address ``api_base`` gets an ``ipBlock``
in the NetworkPolicy instead.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from ..catalog.names import dns_name
from ..catalog.providers import EGRESS_IMAGE, EGRESS_PORT, HEALTH_PATH, TASK_PATHS
from ..config.external import EGRESS_SUFFIX
from . import egress_proxy as proxy
from .images import pull_policy
from .model_routing import LLMD_API_VERSION, MODEL_ANNOTATION, pool_ref
from .model_server import MODELS_ANNOTATION, RUNTIME_ANNOTATION
from .network_policy import HEALTH_CHECK_RANGES, dns_egress

EGRESS_RUNTIME = "external"
PROVIDER_ANNOTATION = "inference-gateway.dev/provider"
PROVIDER_URL_ANNOTATION = "inference-gateway.dev/provider-url"
TASK_ANNOTATION = "inference-gateway.dev/task"
ENDPOINT_ANNOTATION = "inference-gateway.dev/endpoint"
CONFIG_DIGEST_ANNOTATION = "inference-gateway.dev/config-digest"
EGRESS_UID = 65532
"""The ``nonroot`` user of Envoy's distroless image."""
SECRETS_STORE_API = "secrets-store.csi.x-k8s.io/v1"
GKE_SECRETS_DRIVER = "secrets-store-gke.csi.k8s.io"
FQDN_POLICY_API = "networking.gke.io/v1alpha1"


def egress_name(pool: str) -> str:
    return f"{pool}{EGRESS_SUFFIX}"


def egress_labels(pool: str) -> dict[str, str]:
    return {"app": egress_name(pool)}


def key_secret_name(pool: str) -> str:
    return f"{pool}-provider-key"


def _meta(name: str, namespace: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": dict(labels)}


def key_secret(pool: str, namespace: str, value: Any) -> dict[str, Any]:
    """The provider key from a Pulumi secret (``value`` stays a secret Output in the program)."""
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": _meta(key_secret_name(pool), namespace, egress_labels(pool)),
            "stringData": {proxy.KEY_FILE_NAME: value}}


def secret_provider_class(pool: str, namespace: str, resource: str) -> dict[str, Any]:
    """GKE's Secret Manager add-on mounts ``resource`` (a secret version) as the key file."""
    secrets = f'- resourceName: "{resource}"\n  path: "{proxy.KEY_FILE_NAME}"\n'
    return {"apiVersion": SECRETS_STORE_API, "kind": "SecretProviderClass",
            "metadata": _meta(key_secret_name(pool), namespace, egress_labels(pool)),
            "spec": {"provider": "gke", "parameters": {"secrets": secrets}}}


def service_account(pool: str, namespace: str, gsa_email: Any | None) -> dict[str, Any]:
    meta = _meta(egress_name(pool), namespace, egress_labels(pool))
    if gsa_email is not None:
        meta["annotations"] = {"iam.gke.io/gcp-service-account": gsa_email}
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta, "automountServiceAccountToken": False}


def key_volume(pool: str, secret_manager: bool) -> dict[str, Any]:
    if secret_manager:
        return {"name": "provider-key", "csi": {"driver": GKE_SECRETS_DRIVER, "readOnly": True,
                                                 "volumeAttributes": {"secretProviderClass": key_secret_name(pool)}}}
    # 0440 + the pod's fsGroup: readable by the proxy's group only.
    return {"name": "provider-key", "secret": {"secretName": key_secret_name(pool), "defaultMode": 0o440,
                                                "items": [{"key": proxy.KEY_FILE_NAME, "path": proxy.KEY_FILE_NAME}]}}


def deployment(model, namespace: str, config_digest: str) -> dict[str, Any]:
    """The proxy Deployment of served model ``model`` (a ``ServedModelConfig`` with ``external``).
    Rolling updates surge one pod and never take one away before its replacement is ready."""
    ext, pool = model.external, model.pool
    name, labels = egress_name(pool), egress_labels(pool)
    secret_manager = ext.secret.kind == "secret-manager"
    probe = {"httpGet": {"path": HEALTH_PATH, "port": "http", "scheme": "HTTP"}, "periodSeconds": 2,
             "timeoutSeconds": 1, "failureThreshold": 2}
    container = {
        "name": "egress",
        "image": EGRESS_IMAGE,
        "imagePullPolicy": pull_policy(EGRESS_IMAGE),
        "args": ["-c", f"{proxy.CONFIG_DIR}/{proxy.ENVOY_FILE}", "--log-level", "warning", "--disable-hot-restart"],
        "ports": [{"name": "http", "containerPort": EGRESS_PORT, "protocol": "TCP"}],
        "readinessProbe": probe,
        "livenessProbe": {**probe, "periodSeconds": 5, "failureThreshold": 3},
        "resources": {"requests": {"cpu": "250m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
        "securityContext": {
            "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
            "runAsUser": EGRESS_UID, "runAsGroup": EGRESS_UID, "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": "config", "mountPath": proxy.CONFIG_DIR, "readOnly": True},
            {"name": "provider-key", "mountPath": proxy.KEY_DIR, "readOnly": True},
        ],
    }
    annotations = {
        RUNTIME_ANNOTATION: EGRESS_RUNTIME, MODELS_ANNOTATION: ext.name, PROVIDER_ANNOTATION: ext.provider,
        PROVIDER_URL_ANNOTATION: ext.base_url, TASK_ANNOTATION: ext.task, ENDPOINT_ANNOTATION: model.name,
        CONFIG_DIGEST_ANNOTATION: config_digest,
    }
    pod_spec = {
        "containers": [container],
        "serviceAccountName": name,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        # Streams in flight finish before the proxy stops (the gateway stops sending first).
        "terminationGracePeriodSeconds": min(ext.timeout_seconds, 600) + 10,
        "securityContext": {"runAsNonRoot": True, "runAsUser": EGRESS_UID, "runAsGroup": EGRESS_UID,
                            "fsGroup": EGRESS_UID, "seccompProfile": {"type": "RuntimeDefault"}},
        "volumes": [{"name": "config", "configMap": {"name": name}}, key_volume(pool, secret_manager)],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {**_meta(name, namespace, labels), "annotations": {ENDPOINT_ANNOTATION: model.name}},
        "spec": {
            "replicas": ext.replicas,
            "selector": {"matchLabels": labels},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {"metadata": {"labels": labels, "annotations": annotations}, "spec": pod_spec},
        },
    }


def pod_disruption_budget(pool: str, namespace: str, replicas: int) -> dict[str, Any] | None:
    """Voluntary evictions (node drains, upgrades) leave at least one proxy serving."""
    if replicas < 2:
        return None
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": _meta(egress_name(pool), namespace, egress_labels(pool)),
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": egress_labels(pool)}}}


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def network_policy(pool: str, namespace: str, proxy_cidrs: list[str], external) -> dict[str, Any]:
    """In: the gateway's proxies on the serving port, health checks on it. Out: DNS only (plus the
    provider's address when ``api_base`` is an IP); the provider host comes from the FQDN policy."""
    up = proxy.upstream(external)
    port = [{"protocol": "TCP", "port": EGRESS_PORT}]
    egress: list[dict[str, Any]] = [dns_egress()]
    if _is_ip(up.host):
        egress.append({"to": [{"ipBlock": {"cidr": f"{up.host}/32"}}], "ports": [{"protocol": "TCP", "port": up.port}]})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(egress_name(pool), namespace, egress_labels(pool)),
        "spec": {
            "podSelector": {"matchLabels": egress_labels(pool)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [{"ipBlock": {"cidr": c}} for c in proxy_cidrs], "ports": port},
                        {"from": [{"ipBlock": {"cidr": c}} for c in HEALTH_CHECK_RANGES], "ports": port}],
            "egress": egress,
        },
    }


def fqdn_network_policy(pool: str, namespace: str, external) -> dict[str, Any] | None:
    """Egress to the provider's host name only (None for an IP-address api_base)."""
    up = proxy.upstream(external)
    if _is_ip(up.host):
        return None
    return {
        "apiVersion": FQDN_POLICY_API,
        "kind": "FQDNNetworkPolicy",
        "metadata": _meta(f"{egress_name(pool)}-provider", namespace, egress_labels(pool)),
        "spec": {
            "podSelector": {"matchLabels": egress_labels(pool)},
            "egress": [{"matches": [{"name": up.host}], "ports": [{"protocol": "TCP", "port": up.port}]}],
        },
    }


def model_rewrite(model, namespace: str) -> dict[str, Any] | None:
    """Clients call the endpoint by its name; the provider gets its own model name."""
    if model.external.name == model.name:
        return None
    return {
        "apiVersion": LLMD_API_VERSION,
        "kind": "InferenceModelRewrite",
        "metadata": {"name": dns_name(model.name), "namespace": namespace, "annotations": {MODEL_ANNOTATION: model.name}},
        "spec": {"poolRef": pool_ref(model.pool),
                 "rules": [{"matches": [{"model": {"type": "Exact", "value": model.name}}],
                            "targets": [{"modelRewrite": model.external.name, "weight": 100}]}]},
    }


def client_path(model) -> str:
    return TASK_PATHS[model.external.task]
