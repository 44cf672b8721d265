"""External models' egress proxy pods as the local plan sees them (pure: no processes).

An egress proxy pod (components/builders/external_model.py) is annotated
``inference-gateway.dev/runtime: external`` with its provider and the provider's model name, and
mounts the proxy's Envoy config from a ConfigMap at ``/etc/envoy``. Locally it runs as a real
Envoy with that same config (igw/local/egress.py); the replica's args carry the mounted files, so
a changed config replaces the replica as a changed pod template would.
"""

from __future__ import annotations

from typing import Any

from components.builders.egress_proxy import CONFIG_DIR, ENVOY_FILE, SDS_FILE
from components.builders.external_model import EGRESS_RUNTIME, ENDPOINT_ANNOTATION, PROVIDER_ANNOTATION
from components.builders.model_server import MODELS_ANNOTATION

from .runtime_pods import RuntimePod, named_port

__all__ = ["EGRESS_RUNTIME", "egress_args", "egress_pod", "parse_args"]
ENVOY_ARG, SDS_ARG, PROVIDER_ARG, ENDPOINT_ARG, MODEL_ARG = "--envoy-config", "--sds-config", "--provider", "--endpoint", "--model"


def egress_pod(annotations: dict[str, Any], container: dict[str, Any]) -> RuntimePod:
    """The pod's runtime view; its args are filled from the mounted ConfigMap by ``egress_args``."""
    model = str(annotations.get(MODELS_ANNOTATION) or "")
    if not model:
        raise ValueError(f"an egress proxy pod without its provider model (annotation {MODELS_ANNOTATION})")
    port = named_port(container, "http")
    if port is None:
        raise ValueError("an egress proxy pod without a container port named 'http'")
    return RuntimePod(EGRESS_RUNTIME, (model,), port, None, ())


def egress_args(objs: dict[tuple[str, str, str], dict[str, Any]], namespace: str, pod_meta: dict[str, Any],
                pod_spec: dict[str, Any]) -> list[str]:
    """``--envoy-config``/``--sds-config`` (the ConfigMap mounted at /etc/envoy), ``--provider``,
    ``--endpoint``, ``--model``: what the local egress launcher needs to run the pod."""
    containers = pod_spec.get("containers") or []
    mounts = {m.get("name"): m.get("mountPath") for c in containers for m in c.get("volumeMounts") or []}
    config = None
    for v in pod_spec.get("volumes") or []:
        cm = v.get("configMap")
        if isinstance(cm, dict) and mounts.get(v.get("name")) == CONFIG_DIR:
            config = objs.get(("ConfigMap", namespace, cm.get("name")))
    if config is None:
        raise ValueError(f"an egress proxy pod without its Envoy config (a ConfigMap mounted at {CONFIG_DIR})")
    data = config.get("data") or {}
    if ENVOY_FILE not in data or SDS_FILE not in data:
        raise ValueError(f"ConfigMap {config['metadata']['name']} lacks {ENVOY_FILE} or {SDS_FILE}")
    annotations = pod_meta.get("annotations") or {}
    return [f"{ENVOY_ARG}={data[ENVOY_FILE]}", f"{SDS_ARG}={data[SDS_FILE]}",
            f"{PROVIDER_ARG}={annotations.get(PROVIDER_ANNOTATION, 'openai')}",
            f"{ENDPOINT_ARG}={annotations.get(ENDPOINT_ANNOTATION, '')}",
            # the pod template's provider model: a new one rolls the pods, as on a cluster
            f"{MODEL_ARG}={annotations.get(MODELS_ANNOTATION, '')}"]


def parse_args(args: list[str] | tuple[str, ...]) -> dict[str, str]:
    out = {}
    for a in args:
        key, _, value = a.partition("=")
        out[key] = value
    return out
