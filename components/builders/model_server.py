"""Model-server manifests (pure): the Deployment, its LoRA adapters ConfigMap, its identity.

The Deployment is seed 001's vLLM Deployment with the seed's reasoning kept next to each field.
Other runtimes reuse the same pod shape with their preset's command, ports and health paths.
Only ``adapters_configmap`` depends on the LoRA adapter list, so adding or removing an adapter
changes the ConfigMap alone: the syncer sidecar picks it up and vLLM is not restarted.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from ..catalog.hardening import (
    CACHE_DIR,
    CACHE_ENV,
    HF_TOKEN_DIR,
    HF_TOKEN_ENV,
    LORA_SYNCER_USER,
    TMP_DIR,
    RuntimeUser,
    server_user,
)
from ..catalog.runtime_args import OVMS_CONFIG_DIR, ovms_config
from ..catalog.runtime_preset import MODELS_DIR, RuntimePreset, served_models
from ..config.autoscaling import effective_autoscaling
from .images import pull_policy
from .pod_security import container_security_context, pod_security_context

LORA_SYNCER_IMAGE = "registry.k8s.io/gateway-api-inference-extension/lora-syncer:v1.2.1"
"""Seed 001 used the moving staging tag ``k8s-staging-images/...:main``; v1.2.1 is the release
image on the production registry published with vllm-openai v0.19.0 for GKE Inference Gateway."""

RUNTIME_ANNOTATION = "inference-gateway.dev/runtime"
MODELS_ANNOTATION = "inference-gateway.dev/models"
"""On non-vLLM model-server pods: the runtime API they speak and the models they load (comma
separated), for `kubectl describe` and for `igw up`, which starts the matching simulator."""
GPU_RESOURCE = "nvidia.com/gpu"
ACCELERATOR_LABEL = "cloud.google.com/gke-accelerator"
GCSFUSE_DRIVER = "gcsfuse.csi.storage.gke.io"


def pod_labels(server_name: str) -> dict[str, str]:
    """``app: <server>``: the Deployment selector and what the InferencePool selects (seed 001)."""
    return {"app": server_name}


def adapters_configmap_name(server_name: str) -> str:
    return f"{server_name}-adapters"


def lora_syncer_config(server, port: int) -> dict[str, Any]:
    """The syncer's ``vLLMLoRAConfig`` document (key ``configmap.yaml``)."""
    return {
        "vLLMLoRAConfig": {
            "name": server.name,
            "port": port,
            "defaultBaseModel": server.model,
            "ensureExist": {"models": [{"id": a.id, "source": a.source} for a in server.lora_adapters]},
        }
    }


def adapters_configmap(server, namespace: str, preset: RuntimePreset) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": adapters_configmap_name(server.name), "namespace": namespace, "labels": pod_labels(server.name)},
        "data": {"configmap.yaml": yaml.safe_dump(lora_syncer_config(server, preset.port), sort_keys=False)},
    }


def ovms_configmap_name(server_name: str) -> str:
    return f"{server_name}-ovms-config"


def ovms_configmap(server, namespace: str) -> dict[str, Any]:
    """OpenVINO Model Server's multi-model config file (mounted at OVMS_CONFIG_DIR)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": ovms_configmap_name(server.name), "namespace": namespace, "labels": pod_labels(server.name)},
        "data": {"config.json": json.dumps(ovms_config(server), indent=2)},
    }


def hf_token_secret(name: str, namespace: str, token: Any) -> dict[str, Any]:
    """``token`` is a Pulumi secret Output: the component passes it through untouched."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": "Opaque",
        "stringData": {"token": token},
    }


def service_account(name: str, namespace: str, gsa_email: Any | None = None) -> dict[str, Any]:
    """Workload Identity KSA: ``iam.gke.io/gcp-service-account`` names the GSA it acts as."""
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if gsa_email is not None:
        meta["annotations"] = {"iam.gke.io/gcp-service-account": gsa_email}
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta, "automountServiceAccountToken": False}


def is_hardened(user: RuntimeUser) -> bool:
    return user.uid != 0


def _probe(path: str, **timing: int) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": "http", "scheme": "HTTP"}, **timing}


def deployment(
    server,
    namespace: str,
    preset: RuntimePreset,
    accelerator: str | None,
    grace_period_seconds: int,
    hf_secret_name: str | None,
    service_account_name: str | None,
) -> dict[str, Any]:
    labels = pod_labels(server.name)
    user = server_user(server)
    env: list[dict[str, Any]] = [{"name": "PORT", "value": str(preset.port)}]
    if hf_secret_name:
        # The token is a mounted file (huggingface_hub reads HF_TOKEN_PATH), never an env value.
        env += [{"name": k, "value": v} for k, v in HF_TOKEN_ENV.items()]
    for key, value in preset.env.items():
        if key == "VLLM_ALLOW_RUNTIME_LORA_UPDATING" and not server.lora_enabled:
            continue
        env.append({"name": key, "value": value})
    if preset.name == "vllm":
        # Model weights go to the /data emptyDir (counted against ephemeral-storage) instead of
        # the container's writable layer.
        env.append({"name": "HF_HOME", "value": "/data"})
    # The root filesystem is read-only: HOME and every library cache live in the cache emptyDir.
    env += [{"name": k, "value": v} for k, v in CACHE_ENV.items() if k not in preset.env]

    ports = [{"containerPort": preset.port, "name": "http", "protocol": "TCP"}]
    if preset.grpc_port is not None:
        ports.append({"containerPort": preset.grpc_port, "name": "grpc", "protocol": "TCP"})

    gpus = server.tensor_parallel_size
    requests: dict[str, Any] = {"cpu": server.resources.cpu, "memory": server.resources.memory, GPU_RESOURCE: gpus}
    if server.resources.ephemeral_storage:
        requests["ephemeral-storage"] = server.resources.ephemeral_storage
    # GPUs cannot be overcommitted: requests = limits. Memory limit = request so a leaking worker
    # is OOM-killed instead of starving the node. CPU limit = request too: the pod is Guaranteed
    # QoS (evicted last, and whole CPUs can be pinned by the static CPU manager), and a server
    # cannot starve the node's other pods; size resources.cpu so the API server, engine core
    # and tokenizer threads never reach it (throttling would show up as token latency).
    limits = {GPU_RESOURCE: gpus, "cpu": server.resources.cpu, "memory": server.resources.memory}

    mounts = [
        {"mountPath": "/data", "name": "data"},
        {"mountPath": "/dev/shm", "name": "shm"},
        {"mountPath": TMP_DIR, "name": "tmp"},
        {"mountPath": CACHE_DIR, "name": "cache"},
    ]
    volumes: list[dict[str, Any]] = [
        {"name": "data", "emptyDir": {}},
        # NCCL / tensor parallel workers exchange data through shared memory; the container
        # runtime's default 64 MiB /dev/shm is far too small.
        {"name": "shm", "emptyDir": {"medium": "Memory"}},
        {"name": "tmp", "emptyDir": {}},
        # Compile caches (Triton, Inductor, vLLM) and HOME: written at startup, rebuilt per pod.
        {"name": "cache", "emptyDir": {}},
    ]
    if hf_secret_name:
        mounts.append({"name": "hf-token", "mountPath": HF_TOKEN_DIR, "readOnly": True})
        # 0440 + the pod's fsGroup: readable by the server's group, by nobody else.
        volumes.append(
            {"name": "hf-token", "secret": {"secretName": hf_secret_name, "defaultMode": 0o440, "items": [{"key": "token", "path": "token"}]}}
        )
    if server.lora_enabled:
        mounts.append({"name": "adapters", "mountPath": "/adapters"})
        volumes += [
            {"name": "adapters", "emptyDir": {}},
            {"name": "config-volume", "configMap": {"name": adapters_configmap_name(server.name)}},
        ]
    pod_annotations: dict[str, str] = {}
    if preset.name != "vllm":
        pod_annotations[RUNTIME_ANNOTATION] = preset.name
        pod_annotations[MODELS_ANNOTATION] = ",".join(served_models(server))
    if preset.name == "openvino" and server.extra_models:
        mounts.append({"name": "ovms-config", "mountPath": OVMS_CONFIG_DIR, "readOnly": True})
        volumes.append({"name": "ovms-config", "configMap": {"name": ovms_configmap_name(server.name)}})
    if server.gcs_bucket:
        mounts.append({"name": "models", "mountPath": MODELS_DIR, "readOnly": True})
        volumes.append(
            {
                "name": "models",
                "csi": {
                    "driver": GCSFUSE_DRIVER,
                    "readOnly": True,
                    "volumeAttributes": {"bucketName": server.gcs_bucket, "mountOptions": "implicit-dirs"},
                },
            }
        )
        # The GKE Cloud Storage FUSE driver injects its sidecar only into annotated pods.
        pod_annotations["gke-gcsfuse/volumes"] = "true"

    container: dict[str, Any] = {
        "name": "vllm" if preset.name == "vllm" else "model-server",
        "image": preset.image,
        # A release tag is resolved at every start (Always, as seed 001), a digest is cached.
        "imagePullPolicy": pull_policy(preset.image),
    }
    if preset.command is not None:
        container["command"] = list(preset.command)
    container.update(
        {
            "args": preset.build_args(server),
            "env": env,
            "ports": ports,
            "lifecycle": {
                "preStop": {
                    # vLLM stops accepting connections when it receives SIGTERM, so we sleep to give
                    # upstream gateways a chance to take us out of rotation. The value is the p99
                    # propagation latency readiness -> load balancer removing the backend, not the
                    # average; older or simpler load balancers might take upwards of 30s, a modern
                    # gateway like Envoy probes readiness aggressively. Tune it down experimentally
                    # (drain.pre_stop_seconds); terminationGracePeriodSeconds follows automatically
                    # because the drain formula adds it. preStop.sleep needs Kubernetes >= 1.30.
                    "sleep": {"seconds": server.drain.pre_stop_seconds}
                }
            },
            # vLLM's health check is simple: probe aggressively. Any failure is likely significant,
            # but a liveness restart reloads the whole model, so 5 consecutive failures are the
            # evidence of a serious problem.
            "livenessProbe": _probe(preset.health_path, periodSeconds=1, successThreshold=1, failureThreshold=5, timeoutSeconds=1),
            # Readiness endpoints must suit aggressive probing; vLLM's /health has one failure = out.
            "readinessProbe": _probe(preset.readiness_path, periodSeconds=1, successThreshold=1, failureThreshold=1, timeoutSeconds=1),
            # No traffic or liveness checks until the model is loaded. failureThreshold is the
            # longest we believe loading can take (download from Hugging Face + load onto the
            # accelerator); if loading takes longer the pod crash-loops forever, so size
            # startup_timeout_seconds to the model. A low initial delay keeps small models fast.
            # vLLM only serves /health once the model is loaded (not true of every server).
            "startupProbe": _probe(
                preset.health_path, failureThreshold=server.startup_timeout_seconds, initialDelaySeconds=2, periodSeconds=1
            ),
            "resources": {"limits": limits, "requests": requests},
            "volumeMounts": mounts,
        }
    )
    if is_hardened(user):
        container["securityContext"] = container_security_context(user)

    pod_spec: dict[str, Any] = {
        "containers": [container],
        "restartPolicy": "Always",
        # A Service named e.g. 'vllm' in the namespace injects VLLM_PORT=tcp://<ip>:<port>, which
        # vLLM reads as its port and crash-loops. Service environment injection stays off.
        "enableServiceLinks": False,
        # Model servers never call the Kubernetes API: no token in the pod.
        "automountServiceAccountToken": False,
        # Seed 001's drain formula (builders/grace.py): worst-case request (max output tokens x
        # slowest time per output token, + prefill overhead) + preStop, x safety factor, rounded
        # up to 10 s. Long enough to finish the slowest request, short enough that a hung GPU
        # process is killed in proportionate time. Queued requests at shutdown are an accepted
        # overload failure mode; raise drain.safety_factor for periodic traffic.
        "terminationGracePeriodSeconds": grace_period_seconds,
        # Off GKE (accelerator None) any GPU node will do.
        **({"nodeSelector": {ACCELERATOR_LABEL: accelerator}} if accelerator is not None else {}),
        # GKE taints GPU nodes nvidia.com/gpu=present:NoSchedule.
        "tolerations": [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}],
        "volumes": volumes,
    }
    if is_hardened(user):
        pod_spec["securityContext"] = pod_security_context(user)
    if service_account_name:
        pod_spec["serviceAccountName"] = service_account_name
    if server.lora_enabled:
        pod_spec["initContainers"] = [
            {
                # A native sidecar (restartPolicy: Always): starts before vLLM, keeps running, and
                # reloads adapters whenever the ConfigMap changes.
                "name": "lora-adapter-syncer",
                "tty": True,
                "stdin": True,
                "image": LORA_SYNCER_IMAGE,
                "restartPolicy": "Always",
                "imagePullPolicy": pull_policy(LORA_SYNCER_IMAGE),
                "env": [{"name": "DYNAMIC_LORA_ROLLOUT_CONFIG", "value": "/config/configmap.yaml"}],
                # DO NOT USE subPath: dynamic ConfigMap updates don't reach subPath mounts.
                "volumeMounts": [{"name": "config-volume", "mountPath": "/config"}],
                # The syncer only polls a file and calls vLLM's LoRA API: small, but requested so
                # the scheduler and the policy pack see every container's needs.
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
                "securityContext": container_security_context(LORA_SYNCER_USER),
            }
        ]
    template_meta: dict[str, Any] = {"labels": labels}
    if pod_annotations:
        template_meta["annotations"] = pod_annotations
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": server.name, "namespace": namespace, "labels": labels},
        "spec": {
            # An autoscaled server's replica count belongs to its autoscaler (builders/autoscaling.py):
            # left out, so `pulumi up` never resets it (a new Deployment starts with one pod).
            **({} if effective_autoscaling(server) is not None else {"replicas": server.replicas}),
            "selector": {"matchLabels": labels},
            # Seed 004: the old config serves until the new one is ready. A rollout adds one new pod
            # (one more GPU node, scaled up by the autoscaler), removes an old one only once the new
            # one is Ready, and never goes below the serving replicas.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {"metadata": template_meta, "spec": pod_spec},
        },
    }
