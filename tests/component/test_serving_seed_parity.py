"""Seed 001 parity: the `dev` stack renders seed 001's vLLM Deployment, LoRA ConfigMap,
InferencePool and model objects, and every difference is a listed, deliberate improvement.

The seed's YAML is embedded below (comments dropped; InferencePool and InferenceModel translated
to the v1 / llm-d.ai APIs that replaced them). ``IMPROVEMENTS`` applies each deliberate change to
the seed; the rendered objects must equal the result exactly, so an unlisted difference fails.
"""

from __future__ import annotations

import copy
from typing import Any, Callable

import pytest
import yaml

from tests.conftest import k8s_object, rendered

SEED_DEPLOYMENT = yaml.safe_load(
    """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: vllm-llama3-8b-instruct
spec:
  replicas: 3
  selector:
    matchLabels:
      app: vllm-llama3-8b-instruct
  template:
    metadata:
      labels:
        app: vllm-llama3-8b-instruct
    spec:
      containers:
        - name: vllm
          image: "vllm/vllm-openai:latest"
          imagePullPolicy: Always
          command: ["python3", "-m", "vllm.entrypoints.openai.api_server"]
          args:
          - "--model"
          - "meta-llama/Llama-3.1-8B-Instruct"
          - "--tensor-parallel-size"
          - "1"
          - "--port"
          - "8000"
          - "--enable-lora"
          - "--max-loras"
          - "2"
          - "--max-cpu-loras"
          - "12"
          env:
            - name: PORT
              value: "8000"
            - name: HUGGING_FACE_HUB_TOKEN
              valueFrom:
                secretKeyRef:
                  name: hf-token
                  key: token
            - name: VLLM_ALLOW_RUNTIME_LORA_UPDATING
              value: "true"
          ports:
            - containerPort: 8000
              name: http
              protocol: TCP
          lifecycle:
            preStop:
              sleep:
                seconds: 30
          livenessProbe:
            httpGet:
              path: /health
              port: http
              scheme: HTTP
            periodSeconds: 1
            successThreshold: 1
            failureThreshold: 5
            timeoutSeconds: 1
          readinessProbe:
            httpGet:
              path: /health
              port: http
              scheme: HTTP
            periodSeconds: 1
            successThreshold: 1
            failureThreshold: 1
            timeoutSeconds: 1
          startupProbe:
            failureThreshold: 3600
            initialDelaySeconds: 2
            periodSeconds: 1
            httpGet:
              path: /health
              port: http
              scheme: HTTP
          resources:
            limits:
              nvidia.com/gpu: 1
            requests:
              nvidia.com/gpu: 1
          volumeMounts:
            - mountPath: /data
              name: data
            - mountPath: /dev/shm
              name: shm
            - name: adapters
              mountPath: "/adapters"
      initContainers:
        - name: lora-adapter-syncer
          tty: true
          stdin: true
          image: us-central1-docker.pkg.dev/k8s-staging-images/gateway-api-inference-extension/lora-syncer:main
          restartPolicy: Always
          imagePullPolicy: Always
          env:
            - name: DYNAMIC_LORA_ROLLOUT_CONFIG
              value: "/config/configmap.yaml"
          volumeMounts:
          - name: config-volume
            mountPath:  /config
      restartPolicy: Always
      enableServiceLinks: false
      terminationGracePeriodSeconds: 130
      nodeSelector:
        cloud.google.com/gke-accelerator: "nvidia-h100-80gb"
      volumes:
        - name: data
          emptyDir: {}
        - name: shm
          emptyDir:
            medium: Memory
        - name: adapters
          emptyDir: {}
        - name: config-volume
          configMap:
            name: vllm-llama3-8b-adapters
"""
)

SEED_ADAPTERS = yaml.safe_load(
    """
apiVersion: v1
kind: ConfigMap
metadata:
  name: vllm-llama3-8b-adapters
data:
  configmap.yaml: |
      vLLMLoRAConfig:
        name: vllm-llama3.1-8b-instruct
        port: 8000
        defaultBaseModel: meta-llama/Llama-3.1-8B-Instruct
        ensureExist:
          models:
          - id: food-review
            source: Kawon/llama3.1-food-finetune_v14_r8
          - id: cad-fabricator
            source: redcathode/fabricator
"""
)

# `helm install vllm-llama3-8b-instruct --set inferencePool.modelServers.matchLabels.app=...
# --set provider.name=gke` renders this pool (chart v1.x: v1 API, FailOpen default).
SEED_POOL = yaml.safe_load(
    """
apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata:
  name: vllm-llama3-8b-instruct
spec:
  selector:
    matchLabels:
      app: vllm-llama3-8b-instruct
  targetPorts:
  - number: 8000
  endpointPickerRef:
    name: vllm-llama3-8b-instruct-epp
    port:
      number: 9002
    failureMode: FailOpen
"""
)

# Seed InferenceModels (inference.networking.x-k8s.io/v1alpha2) translated: criticality ->
# InferenceObjective priority, targetModels -> InferenceModelRewrite.
SEED_ROUTING = list(
    yaml.safe_load_all(
        """
apiVersion: llm-d.ai/v1alpha2
kind: InferenceObjective
metadata:
  name: food-review
spec:
  priority: 0
  poolRef:
    name: vllm-llama3-8b-instruct
---
apiVersion: llm-d.ai/v1alpha2
kind: InferenceModelRewrite
metadata:
  name: food-review
spec:
  poolRef:
    name: vllm-llama3-8b-instruct
  rules:
  - matches:
    - model: {value: food-review}
    targets:
    - modelRewrite: food-review
      weight: 100
---
apiVersion: llm-d.ai/v1alpha2
kind: InferenceObjective
metadata:
  name: llama3-base-model
spec:
  priority: 100
  poolRef:
    name: vllm-llama3-8b-instruct
"""
    )
)

NS = "igw-dev"
SERVER = "vllm-llama3-8b-instruct"
HARDENED = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "runAsGroup": 10001,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
CACHE_ENV = [
    {"name": "HOME", "value": "/cache"},
    {"name": "USER", "value": "model-server"},
    {"name": "XDG_CACHE_HOME", "value": "/cache/xdg"},
    {"name": "XDG_CONFIG_HOME", "value": "/cache/config"},
    {"name": "VLLM_CACHE_ROOT", "value": "/cache/vllm"},
    {"name": "VLLM_CONFIG_ROOT", "value": "/cache/vllm-config"},
    {"name": "TRITON_CACHE_DIR", "value": "/cache/triton"},
    {"name": "TORCHINDUCTOR_CACHE_DIR", "value": "/cache/torchinductor"},
    {"name": "NUMBA_CACHE_DIR", "value": "/cache/numba"},
    {"name": "OUTLINES_CACHE_DIR", "value": "/cache/outlines"},
]


def _pod(obj):
    return obj["spec"]["template"]["spec"]


def _vllm(obj):
    return _pod(obj)["containers"][0]


def _syncer(obj):
    return _pod(obj)["initContainers"][0]


def _env(container, name):
    return next(e for e in container["env"] if e["name"] == name)


def _token_as_file(d):
    env = _vllm(d)["env"]
    env[env.index(_env(_vllm(d), "HUGGING_FACE_HUB_TOKEN"))] = {"name": "HF_TOKEN_PATH", "value": "/var/run/secrets/huggingface/token"}
    _vllm(d)["volumeMounts"].insert(2, {"name": "hf-token", "mountPath": "/var/run/secrets/huggingface", "readOnly": True})
    _pod(d)["volumes"].insert(2, {"name": "hf-token", "secret": {"secretName": "igw-dev-hf-token", "defaultMode": 0o440, "items": [{"key": "token", "path": "token"}]}})


def _hardened(d):
    _pod(d)["securityContext"] = {
        "runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001, "seccompProfile": {"type": "RuntimeDefault"}
    }
    _vllm(d)["securityContext"] = HARDENED
    _syncer(d)["securityContext"] = HARDENED
    _vllm(d)["env"] += CACHE_ENV
    _vllm(d)["volumeMounts"][2:2] = [{"mountPath": "/tmp", "name": "tmp"}, {"mountPath": "/cache", "name": "cache"}]
    _pod(d)["volumes"][2:2] = [{"name": "tmp", "emptyDir": {}}, {"name": "cache", "emptyDir": {}}]


# name -> change. The README's "Deliberate differences from seed 001" lists the same names.
DEPLOYMENT_IMPROVEMENTS: dict[str, Callable[[dict[str, Any]], None]] = {
    "explicit namespace and object labels": lambda d: d["metadata"].update(namespace=NS, labels={"app": SERVER}),
    "vLLM image pinned (v0.19.0); pulled Always as the seed (a tag)": lambda d: _vllm(d).update(image="vllm/vllm-openai:v0.19.0"),
    "LoRA syncer pinned to the v1.2.1 release image": lambda d: _syncer(d).update(
        image="registry.k8s.io/gateway-api-inference-extension/lora-syncer:v1.2.1"
    ),
    "HF_HOME=/data: weights land in the data emptyDir": lambda d: _vllm(d)["env"].append({"name": "HF_HOME", "value": "/data"}),
    "cpu/memory/ephemeral-storage requests, cpu and memory limits (Guaranteed QoS)": lambda d: _vllm(d)["resources"].update(
        requests={"cpu": "8", "memory": "48Gi", "nvidia.com/gpu": 1, "ephemeral-storage": "100Gi"},
        limits={"nvidia.com/gpu": 1, "cpu": "8", "memory": "48Gi"},
    ),
    "no service account token in model server pods": lambda d: _pod(d).update(automountServiceAccountToken=False),
    "toleration for GKE's nvidia.com/gpu taint": lambda d: _pod(d).update(
        tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    ),
    "LoRA syncer requests cpu/memory (and caps both)": lambda d: _pod(d)["initContainers"][0].update(
        resources={"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}}
    ),
    "adapters ConfigMap named <server>-adapters": lambda d: _pod(d)["volumes"][3]["configMap"].update(name=f"{SERVER}-adapters"),
    "HF token mounted as a file (HF_TOKEN_PATH) from the Secret <name_prefix>-hf-token, created by the stack": _token_as_file,
    "hardened: non-root UID 10001, read-only root filesystem, no privilege escalation, no capabilities, "
    "RuntimeDefault seccomp; HOME, caches and /tmp on emptyDirs": _hardened,
    "rolling updates surge one pod and never remove a serving one first (maxSurge 1, maxUnavailable 0)": lambda d: d["spec"].update(
        strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    ),
}


def _adapters_improvements(cm):
    cm["metadata"].update(name=f"{SERVER}-adapters", namespace=NS, labels={"app": SERVER})
    doc = yaml.safe_load(cm["data"]["configmap.yaml"])
    doc["vLLMLoRAConfig"]["name"] = SERVER  # the seed's 'vllm-llama3.1-8b-instruct' matched nothing
    cm["data"]["configmap.yaml"] = doc


def _pool_improvements(pool):
    pool["metadata"]["namespace"] = NS
    pool["spec"]["appProtocol"] = "http"  # explicit (CRD default)
    pool["spec"]["endpointPickerRef"].update(group="", kind="Service")  # explicit (CRD defaults)
    # how long a gateway we configure waits for each picker answer (GKE's sets its own)
    pool["metadata"]["annotations"] = {"inference-gateway.dev/picker-message-timeout": "1000ms"}


def _routing_improvements(objs):
    for o in objs:
        o["metadata"]["namespace"] = NS
        o["spec"]["poolRef"].update(group="inference.networking.k8s.io", kind="InferencePool")
        if o["kind"] == "InferenceModelRewrite":
            o["spec"]["rules"][0]["matches"][0]["model"]["type"] = "Exact"
    # names follow the model name (DNS-safe) and carry it in an annotation
    objs[2]["metadata"]["name"] = "meta-llama-llama-3.1-8b-instruct"
    objs[0]["metadata"]["annotations"] = objs[1]["metadata"]["annotations"] = {"inference-gateway.dev/model": "food-review"}
    objs[2]["metadata"]["annotations"] = {"inference-gateway.dev/model": "meta-llama/Llama-3.1-8B-Instruct"}


@pytest.fixture(scope="module")
def dev():
    return rendered("dev")


def test_vllm_deployment_is_seed_001_plus_listed_improvements(dev):
    expected = copy.deepcopy(SEED_DEPLOYMENT)
    for change in DEPLOYMENT_IMPROVEMENTS.values():
        change(expected)
    assert k8s_object(dev, "Deployment", SERVER) == expected


def test_every_listed_improvement_is_a_real_difference(dev):
    actual = k8s_object(dev, "Deployment", SERVER)
    for name, change in DEPLOYMENT_IMPROVEMENTS.items():
        others = copy.deepcopy(SEED_DEPLOYMENT)
        for other_name, other in DEPLOYMENT_IMPROVEMENTS.items():
            if other_name != name:
                other(others)
        assert others != actual, f"improvement {name!r} changes nothing"


def test_adapters_configmap_is_seed_001_plus_listed_improvements(dev):
    expected = copy.deepcopy(SEED_ADAPTERS)
    _adapters_improvements(expected)
    actual = copy.deepcopy(k8s_object(dev, "ConfigMap", f"{SERVER}-adapters"))
    actual["data"]["configmap.yaml"] = yaml.safe_load(actual["data"]["configmap.yaml"])
    assert actual == expected


def test_inference_pool_is_the_charts_v1_pool(dev):
    expected = copy.deepcopy(SEED_POOL)
    _pool_improvements(expected)
    assert k8s_object(dev, "InferencePool", SERVER) == expected


def test_routing_objects_translate_the_seeds_inference_models(dev):
    expected = copy.deepcopy(SEED_ROUTING)
    _routing_improvements(expected)
    for obj in expected:
        assert k8s_object(dev, obj["kind"], obj["metadata"]["name"]) == obj


def test_grace_period_is_the_seeds_130(dev):
    assert _pod(k8s_object(dev, "Deployment", SERVER))["terminationGracePeriodSeconds"] == 130
