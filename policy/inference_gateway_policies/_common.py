"""Shared helpers: resource kinds, property access, pod templates, config and environment.

Props are the resource's *inputs* with Pulumi's camelCase names, exactly as `pulumi preview`
hands them to a policy pack and as `igw synth` records them. Numbers may arrive as floats
(8000.0) under the engine, so comparisons go through `number()`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Iterable, Iterator

SECRET_MASK = "[secret]"
"""How `igw synth` records a secret input (the engine never writes the value down)."""
UNKNOWN = "[unknown]"
"""How `igw synth` records a value only known after deploy."""

CLUSTER = "gcp:container/cluster:Cluster"
NODE_POOL = "gcp:container/nodePool:NodePool"
SUBNETWORK = "gcp:compute/subnetwork:Subnetwork"
ADDRESS = "gcp:compute/address:Address"

H100_ACCELERATORS = ("nvidia-h100-80gb", "nvidia-h100-mega-80gb")
GPU_RESOURCE = "nvidia.com/gpu"
EXTERNAL_GATEWAY_CLASSES = ("gke-l7-regional-external-managed",)
REGIONAL_GATEWAY_CLASSES = ("gke-l7-regional-external-managed", "gke-l7-rilb")
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")


def k8s_kind(resource_type: str) -> tuple[str, str]:
    """`kubernetes:apps/v1:Deployment` -> ("apps", "Deployment"); core types have group ""."""
    if not resource_type.startswith("kubernetes:") or resource_type.startswith("kubernetes:index:"):
        return "", ""
    parts = resource_type.split(":")
    if len(parts) != 3:
        return "", ""
    group_version, kind = parts[1], parts[2]
    group = group_version.rsplit("/", 1)[0] if "/" in group_version else ""
    return ("" if group == "core" else group), kind


def is_k8s(resource_type: str, group: str, kind: str) -> bool:
    return k8s_kind(resource_type) == (group, kind)


def get(obj: Any, path: str, default: Any = None) -> Any:
    """`get(props, "addonsConfig.httpLoadBalancing.disabled")`: None-safe dotted lookup."""
    cur = obj
    for key in path.split("."):
        if not isinstance(cur, Mapping) or key not in cur:
            return default
        cur = cur[key]
        if cur is None:
            return default
    return cur


def number(value: Any) -> float | None:
    """A numeric input (int, float from the wire, or a numeric string) or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    return None


def fmt(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if value is None:
        return "unset"
    return repr(value) if isinstance(value, str) else str(value)


def label(resource_type: str, name: str) -> str:
    """How violations name a resource: `Cluster 'igw-prod-gke'`."""
    short = resource_type.rsplit(":", 1)[-1]
    return f"{short} {name!r}"


def k8s_name(props: Mapping[str, Any], fallback: str) -> str:
    meta = props.get("metadata") or {}
    name = meta.get("name") if isinstance(meta, Mapping) else None
    return name if isinstance(name, str) and name and name != UNKNOWN else fallback


# -- pod templates ---------------------------------------------------------------------------

def pod_spec(props: Mapping[str, Any]) -> Mapping[str, Any] | None:
    spec = get(props, "spec.template.spec")
    return spec if isinstance(spec, Mapping) else None


def containers(spec: Mapping[str, Any], sidecars: bool = True) -> Iterator[Mapping[str, Any]]:
    """Regular containers, plus native sidecars (initContainers with restartPolicy: Always)."""
    for c in items(spec.get("containers")):
        yield c
    if sidecars:
        for c in items(spec.get("initContainers")):
            if c.get("restartPolicy") == "Always":
                yield c


def requests_gpu(container: Mapping[str, Any]) -> bool:
    for section in ("limits", "requests"):
        n = number(get(container, f"resources.{section}", {}).get(GPU_RESOURCE))
        if n:
            return True
    return False


def is_gpu_workload(resource_type: str, props: Mapping[str, Any]) -> bool:
    """A model server: a workload whose pod requests nvidia.com/gpu."""
    group, kind = k8s_kind(resource_type)
    if group != "apps" or kind not in WORKLOAD_KINDS:
        return False
    spec = pod_spec(props)
    return spec is not None and any(requests_gpu(c) for c in containers(spec))


def gpu_containers(spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [c for c in containers(spec, sidecars=False) if requests_gpu(c)]


# -- config and environment ------------------------------------------------------------------

def config(args: Any, key: str, default: Any) -> Any:
    """A policy config value (pack config file / Pulumi Cloud), or the documented default."""
    try:
        cfg = args.get_config() or {}
    except Exception:  # pragma: no cover - defensive: config is optional everywhere
        cfg = {}
    value = cfg.get(key)
    return default if value is None else value


OFFLINE_TAG = "igw:offline"
"""Stack tag `igw policy` sets to "true". Offline, everything a policy knows about the stack comes
from tags and policy config (never from process-global Pulumi config), and secret inputs are
recorded as "[secret]"."""


def offline(args: Any) -> bool:
    return (getattr(args, "stack_tags", None) or {}).get(OFFLINE_TAG) == "true"


def stack_config_object(args: Any, key: str) -> Any:
    """`inference-gateway:<key>` of the previewed stack (engine only; see stack_config.py)."""
    if offline(args):
        return None
    try:
        import pulumi

        return pulumi.Config("inference-gateway").get_object(key)
    except Exception:
        return None


def stack_environment(args: Any) -> str | None:
    """The stack's environment: the `environment` stack tag (Pulumi Cloud, or `igw policy` from the
    stack file), else the stack's `inference-gateway:environment` config."""
    tags = getattr(args, "stack_tags", None) or {}
    if tags.get("environment"):
        return str(tags["environment"])
    if offline(args):
        return None
    try:
        import pulumi

        return pulumi.Config("inference-gateway").get("environment")
    except Exception:
        return None


def applies_to_environment(args: Any) -> bool:
    """Production-only policies: on when the stack's environment is in config `environments`."""
    wanted = config(args, "environments", ["production"])
    if "*" in wanted:
        return True
    return stack_environment(args) in wanted


def first(items: Iterable[Any]) -> Any:
    return next(iter(items), None)


def items(value: Any) -> list[Any]:
    """A list input as a list (engine props arrive as read-only Sequence proxies); else []."""
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return list(value)
    return []


def is_map(value: Any) -> bool:
    return isinstance(value, Mapping)
