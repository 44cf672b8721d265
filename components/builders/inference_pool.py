"""InferencePool (v1) and its endpoint picker (pure): config, Deployment, RBAC, Service.

Names follow the inferencepool Helm chart: pool ``R``, picker ``R-epp`` (Deployment, Service,
ServiceAccount, Role, RoleBinding, ConfigMap), so operators who know the chart find everything.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import yaml
from endpoint_picker.config import DEFAULT_SCORER_WEIGHTS

from ..catalog.runtime_preset import RuntimePreset
from ..config.autoscaling import flow_control_for
from ..config.served_models import served_targets
from .images import pull_policy

POOL_GROUP = "inference.networking.k8s.io"
POOL_API_VERSION = f"{POOL_GROUP}/v1"
LLMD_GROUP = "llm-d.ai"

GRPC_PORT = 9002
HEALTH_PORT = 9003
METRICS_PORT = 9090
PICKER_UID = 65532
"""Numeric non-root user (the distroless 'nonroot' uid) so runAsNonRoot is checkable by the kubelet."""
PICKER_GRACE_SECONDS = 130
"""As the inferencepool chart: the picker drains in-flight ext_proc streams (30 s) well within it."""
CONFIG_KEY = "picker.yaml"
API_KEYS_DIR = "/etc/picker/api-keys"
API_KEYS_KEY = "keys.yaml"
TLS_DIR = "/etc/picker/tls"
SYSTEM_POOL_SELECTOR = {"inference-gateway.dev/pool": "system"}
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
SERVICE_ACCOUNT_TOKEN_SECONDS = 3607
"""What the kubelet's automount uses: a bound token the kubelet refreshes (the picker re-reads it)."""
CONFIG_HASH_ANNOTATION = "inference-gateway.dev/config-hash"
PULUMI_WAIT_FOR = "pulumi.com/waitFor"
MESSAGE_TIMEOUT_ANNOTATION = "inference-gateway.dev/picker-message-timeout"
"""On the InferencePool: how long a gateway waits for each picker answer (a Gateway API duration).
GKE's gateway sets its own EPP callout timeout; gateways we configure (igw up) read this."""
LEASE_RETRY_SECONDS = 1
"""With leader election: how often the leader renews and a standby tries (failover adds up to this)."""
LIVENESS_KILL_GRACE_SECONDS = 5
"""A picker failing liveness is hung: no drain to wait for, so not the pod's 130 s either."""

# The scorer for each runtime signal; the weights are the picker's shipped defaults
# (endpoint_picker.config.DEFAULT_SCORER_WEIGHTS, the one place they are written down).
# Set pools[].picker.scorers to use other weights.
SIGNAL_SCORERS = (("queue", "queue-scorer"), ("kv", "kv-cache-utilization-scorer"), ("prefix", "prefix-cache-scorer"))
GKE_CLIENT_ADDRESS_HOP = 2
"""Where the client's address is in X-Forwarded-For behind GKE's regional Application Load
Balancers: they append `<client-ip>,<load-balancer-ip>` to whatever the client sent (Cloud Load
Balancing docs, "X-Forwarded-For header"), so the client is the second entry from the right and
everything left of it is client-controlled. The picker never reads a client-chosen identity."""


def picker_name(pool_name: str) -> str:
    return f"{pool_name}-epp"


def api_keys_secret_name(pool_name: str) -> str:
    return f"{picker_name(pool_name)}-api-keys"


def picker_labels(pool_name: str) -> dict[str, str]:
    return {"app": picker_name(pool_name), "inferencepool": picker_name(pool_name)}


def _meta(name: str, namespace: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels:
        meta["labels"] = labels
    return meta


# -- the pool --------------------------------------------------------------------------------------
def inference_pool(pool, server_name: str, preset: RuntimePreset, namespace: str) -> dict[str, Any]:
    meta = _meta(pool.name, namespace)
    meta["annotations"] = {MESSAGE_TIMEOUT_ANNOTATION: f"{pool.picker.message_timeout_ms}ms"}
    return {
        "apiVersion": POOL_API_VERSION,
        "kind": "InferencePool",
        "metadata": meta,
        "spec": {
            "selector": {"matchLabels": {"app": server_name}},
            "targetPorts": [{"number": preset.target_port}],
            # Always explicit: the reader does not need to know the CRD default (http).
            "appProtocol": preset.app_protocol,
            "endpointPickerRef": {
                "group": "",
                "kind": "Service",
                "name": picker_name(pool.name),
                "port": {"number": GRPC_PORT},
                # Explicit: the CRD defaults to FailClose while the chart defaults to FailOpen.
                "failureMode": pool.failure_mode,
            },
        },
    }


# -- picker config (picker/endpoint_picker/config.py PickerConfig) -----------------------------
def default_scorers(preset: RuntimePreset, has_adapters: bool) -> list[dict[str, Any]]:
    """Benchmarked weights for the signals the runtime exposes, LoRA affinity when adapters exist,
    and the picker's own in-flight load (the only signal when the runtime exposes no metrics)."""
    w = DEFAULT_SCORER_WEIGHTS
    scorers = [{"type": t, "weight": w[t]} for signal, t in SIGNAL_SCORERS if signal in preset.picker_signals]
    if has_adapters and "lora" in preset.picker_signals:
        scorers.append({"type": "lora-affinity-scorer", "weight": w["lora-affinity-scorer"]})
    scorers.append({"type": "inflight-load-scorer", "weight": w["inflight-load-scorer"]})
    return scorers


def picker_config(pool, server, preset: RuntimePreset, models: list) -> dict[str, Any]:
    settings = pool.picker
    if settings.scorers is not None:
        scorers = [
            {"type": s.type, "weight": s.weight, **({"parameters": dict(s.parameters)} if s.parameters else {})}
            for s in settings.scorers
        ]
    else:
        scorers = default_scorers(preset, bool(server.lora_adapters) if server is not None else False)
    # An external model's pool (server None) serves the endpoint's name and the provider's model
    # name it is rewritten to, nothing else: any other model would spend the provider key.
    external = [m.external.name for m in models if m.external is not None]
    served = sorted((server.served_names if server is not None else set()) | {m.name for m in models} | set(external))
    rate_limits = [
        {"key": r.key, "calls": r.calls, "renewal_period": r.renewal_period, "model": m.name}
        for m in models
        for r in m.rate_limits
    ]
    config: dict[str, Any] = {
        "scheduling": {"filters": [], "scorers": scorers, "picker": {"type": settings.picker}},
        "scrape": {"engine": preset.scrape_engine, "path": preset.metrics_path or "/metrics"},
        "models": {
            "served": served,
            "reject_unknown": settings.reject_unknown_models or bool(external),
            # seed 000: x-deployed-model-id -> the model it serves (an unknown id is a 404)
            "deployed": {t.name: t.model for t in served_targets(models, [pool.name])},
            # where a served-model request (no API in its path) carries its model: Caikit model_id
            **({"api": preset.api} if preset.api != "openai" else {}),
        },
        "rate_limits": rate_limits,
        "auth": {"client_address_header": "x-forwarded-for", "client_address_hop": GKE_CLIENT_ADDRESS_HOP},
    }
    overload = {k: v for k, v in (("overload_threshold", settings.overload_threshold),
                                  ("critical_overload_threshold", settings.critical_overload_threshold)) if v is not None}
    if overload:
        config["saturation"] = overload
    flow = flow_control_for(pool, server)
    if flow is not None:
        config["flow_control"] = {"max_requests_per_priority": flow.max_queued_per_priority,
                                  "ttl_s": flow.ttl_seconds, "no_endpoint_ttl_s": flow.no_endpoint_ttl_seconds}
    return config


def picker_configmap(pool, config: dict[str, Any], namespace: str) -> dict[str, Any]:
    name = picker_name(pool.name)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(name, namespace, picker_labels(pool.name)),
        "data": {CONFIG_KEY: yaml.safe_dump(config, sort_keys=False)},
    }


def config_hash(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


# -- picker workload -------------------------------------------------------------------------------
def picker_args(pool, namespace: str) -> list[str]:
    args = [
        "--pool-name", pool.name,
        "--pool-namespace", namespace,
        "--config-file", f"/config/{CONFIG_KEY}",
        "--discovery", "kubernetes",
        "--grpc-port", str(GRPC_PORT),
        "--grpc-health-port", str(HEALTH_PORT),
        "--metrics-port", str(METRICS_PORT),
    ]
    if pool.picker.replicas > 1:
        args += ["--ha-enable-leader-election", "--ha-lease-duration", str(pool.picker.lease_duration_seconds),
                 "--ha-retry-period", str(LEASE_RETRY_SECONDS)]
    if pool.picker.api_keys:
        args += ["--api-keys-file", f"{API_KEYS_DIR}/{API_KEYS_KEY}"]
    if pool.picker.tls_secret:
        args += ["--cert-path", TLS_DIR]  # else the picker's default: TLS with a self-signed certificate
    return args


def service_account_token_volume() -> dict[str, Any]:
    """The API credentials the picker needs, mounted explicitly instead of automounted: the same
    token, CA bundle and namespace files at the same path, in this one container only."""
    return {
        "name": "kube-api-access",
        "projected": {
            "defaultMode": 0o444,
            "sources": [
                {"serviceAccountToken": {"path": "token", "expirationSeconds": SERVICE_ACCOUNT_TOKEN_SECONDS}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
            ],
        },
    }


def _picker_strategy(replicas: int) -> dict[str, Any]:
    """One picker: surge first, so the new one is ready before the old one stops. Several (leader
    election): Recreate, as the inferencepool chart. A rolling update cannot finish there: a new
    pod becomes Ready only once it holds the Lease, which the old leader keeps until it is
    removed, which a rolling update does only once the new pods are Ready. The old leader hands
    the Lease over as it stops, so the gap is the new pods' start."""
    if replicas > 1:
        return {"type": "Recreate"}
    return {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}


def picker_deployment(pool, namespace: str, image: Any, config: dict[str, Any]) -> dict[str, Any]:
    name = picker_name(pool.name)
    labels = picker_labels(pool.name)
    settings = pool.picker
    mounts = [
        {"name": "config", "mountPath": "/config", "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "kube-api-access", "mountPath": SERVICE_ACCOUNT_DIR, "readOnly": True},
    ]
    volumes: list[dict[str, Any]] = [
        {"name": "config", "configMap": {"name": name}},
        {"name": "tmp", "emptyDir": {}},
        service_account_token_volume(),
    ]
    if settings.api_keys:
        mounts.append({"name": "api-keys", "mountPath": API_KEYS_DIR, "readOnly": True})
        volumes.append({"name": "api-keys", "secret": {"secretName": api_keys_secret_name(pool.name)}})
    if settings.tls_secret:
        mounts.append({"name": "tls", "mountPath": TLS_DIR, "readOnly": True})
        volumes.append({"name": "tls", "secret": {"secretName": settings.tls_secret}})
    container = {
        "name": "epp",
        "image": image,
        "imagePullPolicy": pull_policy(image),
        "args": picker_args(pool, namespace),
        "ports": [
            {"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"},
            {"name": "grpc-health", "containerPort": HEALTH_PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
        ],
        # Both are answered by the event loop that makes the decisions, so a hung picker fails
        # them. readiness: SERVING only on the synced leader; two misses (~4 s) take a hung one
        # out of the Service (FailOpen pools then route without it at once). liveness: SERVING
        # while the process runs (also while draining); three misses (~15 s) restart it, with a
        # short kill grace since a hung process has nothing to drain.
        "livenessProbe": {
            "grpc": {"port": HEALTH_PORT, "service": "liveness"},
            "initialDelaySeconds": 5,
            "periodSeconds": 5,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
            "terminationGracePeriodSeconds": LIVENESS_KILL_GRACE_SECONDS,
        },
        "readinessProbe": {
            "grpc": {"port": HEALTH_PORT, "service": "readiness"},
            "periodSeconds": 2,
            "timeoutSeconds": 1,
            "failureThreshold": 2,
        },
        "resources": {
            "requests": {"cpu": settings.cpu, "memory": settings.memory},
            "limits": {"memory": settings.memory},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": PICKER_UID,
            "runAsGroup": PICKER_UID,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": mounts,
    }
    meta = _meta(name, namespace, labels)
    if settings.replicas > 1:
        # Only the Lease holder is ever Ready (standbys are warm but not endpoints): Pulumi waits
        # for that one, not for all replicas, which would never happen.
        meta["annotations"] = {PULUMI_WAIT_FOR: "jsonpath={.status.readyReplicas}=1"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": settings.replicas,
            "selector": {"matchLabels": labels},
            "strategy": _picker_strategy(settings.replicas),
            "template": {
                # The picker reads its config at startup: a changed config rolls the pods.
                "metadata": {"labels": labels, "annotations": {CONFIG_HASH_ANNOTATION: config_hash(config)}},
                "spec": {
                    "serviceAccountName": name,
                    # It watches pods and pools: its token is the kube-api-access volume above.
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": PICKER_GRACE_SECONDS,
                    "nodeSelector": dict(SYSTEM_POOL_SELECTOR),
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": PICKER_UID,
                        "fsGroup": PICKER_UID,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }


def picker_service_account(pool, namespace: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(picker_name(pool.name), namespace, picker_labels(pool.name))}


def picker_role(pool, namespace: str) -> dict[str, Any]:
    read = ["get", "list", "watch"]
    rules: list[dict[str, Any]] = [
        {"apiGroups": [""], "resources": ["pods"], "verbs": read},
        {"apiGroups": [POOL_GROUP], "resources": ["inferencepools"], "verbs": read},
        {"apiGroups": [LLMD_GROUP], "resources": ["inferenceobjectives", "inferencemodelrewrites"], "verbs": read},
    ]
    if pool.picker.replicas > 1:
        rules += [
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]},
            {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
        ]
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _meta(picker_name(pool.name), namespace, picker_labels(pool.name)),
        "rules": rules,
    }


def picker_role_binding(pool, namespace: str) -> dict[str, Any]:
    name = picker_name(pool.name)
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _meta(name, namespace, picker_labels(pool.name)),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
    }


def picker_service(pool, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(picker_name(pool.name), namespace, picker_labels(pool.name)),
        "spec": {
            "type": "ClusterIP",
            "selector": picker_labels(pool.name),
            "ports": [
                {"name": "grpc-ext-proc", "port": GRPC_PORT, "targetPort": GRPC_PORT, "protocol": "TCP"},
                {"name": "http-metrics", "port": METRICS_PORT, "targetPort": METRICS_PORT, "protocol": "TCP"},
            ],
        },
    }


def api_keys_secret(pool, namespace: str, keys: Any) -> dict[str, Any]:
    """``keys`` is the secret config value ``apiKeys`` (a Pulumi secret Output): a YAML/JSON
    mapping of sha256(api key) hex -> user name, the picker's --api-keys-file format."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(api_keys_secret_name(pool.name), namespace, picker_labels(pool.name)),
        "type": "Opaque",
        "stringData": {API_KEYS_KEY: keys},
    }
