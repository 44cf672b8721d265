"""Deployments a pool selects → the model-server replicas that stand in for their pods (pure).

Each pod becomes one `Replica` on its own loopback address. A vLLM container's command and args
become the simulator's argv (`sim_args`); a pod annotated with another runtime (runtime_pods.py)
or an external model's egress proxy (egress_pods.py) keeps that runtime's args and ports. LoRA
adapters come from the pod's LoRA ConfigMap (`vLLMLoRAConfig.ensureExist.models`); the readiness
path from the container's readinessProbe. Sidecars and init containers do not run.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

import yaml

from .egress_pods import EGRESS_RUNTIME, egress_args
from .rendered_objects import Objects, object_meta, object_ref
from .runtime_pods import runtime_pod

_DROP_FLAGS_WITH_VALUE = {"--host", "--port", "--lora-modules", "--uvicorn-log-level", "--download-dir"}


@dataclass
class Replica:
    name: str                   # pod name
    deployment: str
    address: str                # 127.0.1.x
    ports: tuple[int, ...]      # one per pool targetPort
    labels: dict[str, str]
    model: str
    adapters: list[tuple[str, str]]      # (id, source)
    args: list[str]             # vllm-sim argv (without --time-scale, added at start)
    readiness_path: str = "/health"
    runtime: str = "vllm"       # the API it speaks (runtime_pods.py for seed 003's others)
    grpc_port: int | None = None    # a runtime's gRPC port (ports[0] is its HTTP port then)
    models: tuple[str, ...] = ()    # a runtime's models (vLLM: model + adapters)


def sim_args(container: dict[str, Any]) -> tuple[str, list[str]]:
    """vLLM container command/args → (model, vllm-sim argv). Flags the simulator does not know are
    passed through (it ignores them with a note); --host/--port are set per replica."""
    argv = [str(a) for a in (container.get("args") or [])]
    cmd = [str(c) for c in (container.get("command") or [])]
    # `vllm serve MODEL ...` in command or args
    for seq in (cmd, argv):
        if "serve" in seq:
            i = seq.index("serve")
            rest = seq[i + 1:]
            if rest and not rest[0].startswith("-"):
                argv = ["--model", rest[0]] + (argv if seq is cmd else rest[1:])
            break
    out: list[str] = []
    model = "meta-llama/Llama-3.1-8B-Instruct"
    i = 0
    while i < len(argv):
        a = argv[i]
        key, eq, val = a.partition("=")
        takes_value = not eq and i + 1 < len(argv) and not argv[i + 1].startswith("--")
        if key in _DROP_FLAGS_WITH_VALUE:
            if key == "--lora-modules":  # several values
                i += 1
                while i < len(argv) and not argv[i].startswith("--"):
                    i += 1
                continue
            i += 1 if eq else 2
            continue
        if key == "--model":
            model = val if eq else (argv[i + 1] if takes_value else model)
        out.append(a)
        if takes_value:
            out.append(argv[i + 1])
            i += 2
        else:
            i += 1
    if "--model" not in [a.partition("=")[0] for a in out]:
        out = ["--model", model] + out
    return model, out


def pod_labels(deployment: dict[str, Any]) -> dict[str, str]:
    """The labels of the Deployment's pod template (what a pool's selector matches)."""
    tmpl = ((deployment.get("spec") or {}).get("template") or {})
    return {str(k): str(v) for k, v in ((tmpl.get("metadata") or {}).get("labels") or {}).items()}


def configmap_volumes(pod_spec: dict[str, Any]) -> list[str]:
    """The ConfigMaps a pod mounts."""
    return [v["configMap"]["name"] for v in pod_spec.get("volumes") or [] if isinstance(v.get("configMap"), dict)]


def _lora_configmap(objs: Objects, ns: str, pod_spec: dict[str, Any]) -> list[tuple[str, str]]:
    adapters: list[tuple[str, str]] = []
    for name in configmap_volumes(pod_spec):
        cm = objs.get(("ConfigMap", ns, name))
        if not cm:
            continue
        for raw in (cm.get("data") or {}).values():
            try:
                doc = yaml.safe_load(raw)
            except yaml.YAMLError:
                continue
            cfg = (doc or {}).get("vLLMLoRAConfig") if isinstance(doc, dict) else None
            if not isinstance(cfg, dict):
                continue
            for m in ((cfg.get("ensureExist") or {}).get("models") or []):
                if isinstance(m, dict) and m.get("id"):
                    adapters.append((str(m["id"]), str(m.get("source") or m["id"])))
    return adapters


def _container_ports(container: dict[str, Any]) -> list[int]:
    return [int(p["containerPort"]) for p in container.get("ports") or [] if p.get("containerPort")]


def _readiness_path(container: dict[str, Any]) -> str:
    probe = (container.get("readinessProbe") or {}).get("httpGet") or {}
    return str(probe.get("path") or "/health")


def model_server_replicas(deployment: dict[str, Any], objs: Objects,
                          pool_ports: dict[str, tuple[int, ...]], first_address: ipaddress.IPv4Address,
                          problems: list[str], skipped: list[tuple[str, str]]) -> list[Replica] | None:
    """One Replica per pod of a Deployment that pools select, on consecutive addresses from
    `first_address`; `pool_ports` maps each selecting pool (`namespace/name`) to its targetPorts.
    None when the Deployment cannot run locally (the reason is added to `problems`)."""
    o = deployment
    ns, dname = object_meta(o)
    tmpl = ((o.get("spec") or {}).get("template") or {})
    pod_spec = tmpl.get("spec") or {}
    containers = pod_spec.get("containers") or []
    target_ports = [t for ports in pool_ports.values() for t in ports]
    port_set = set(target_ports)
    main = next((c for c in containers if {int(p.get("containerPort", 0)) for p in c.get("ports") or []} & port_set),
                containers[0] if containers else None)
    if main is None:
        problems.append(f"Deployment {ns}/{dname}: no containers")
        return None
    try:
        runtime = runtime_pod(tmpl.get("metadata") or {}, main)
        # An external model's egress proxy runs its mounted Envoy config (egress_pods.py).
        egress = egress_args(objs, ns, tmpl.get("metadata") or {}, pod_spec) \
            if runtime is not None and runtime.runtime == EGRESS_RUNTIME else None
    except ValueError as e:
        problems.append(f"Deployment {ns}/{dname}: {e}; it does not run locally")
        return None
    model, args = (runtime.models[0], egress or list(runtime.args)) if runtime else sim_args(main)
    declared = _container_ports(main)
    # The replica listens where the container does; the pools reach it on targetPorts. As in
    # a cluster, a targetPort no container declares gets nothing, so say so.
    ports = runtime.ports if runtime else (
        tuple(dict.fromkeys(p for p in target_ports if p in declared)) or tuple(declared[:1]) or tuple(target_ports))
    for pool, pool_target_ports in pool_ports.items():
        missing = [t for t in pool_target_ports if declared and t not in declared]
        if missing:
            problems.append(f"InferencePool {pool} targetPorts {missing} are not containerPorts "
                            f"of Deployment {ns}/{dname} ({declared}); the pool cannot reach them")
    adapters = _lora_configmap(objs, ns, pod_spec)
    labels = pod_labels(o)
    replicas = [
        Replica(
            name=f"{dname}-{i}", deployment=dname, address=str(first_address + i), ports=ports,
            labels=labels, model=model, adapters=adapters, args=args, readiness_path=_readiness_path(main),
            runtime=runtime.runtime if runtime else "vllm", grpc_port=runtime.grpc_port if runtime else None,
            models=runtime.models if runtime else (),
        )
        for i in range(int((o.get("spec") or {}).get("replicas", 1)))
    ]
    others = [c.get("name") for c in containers if c is not main] + \
             [c.get("name") for c in pod_spec.get("initContainers") or []]
    if others:
        skipped.append((f"{object_ref(o)} containers {', '.join(map(str, others))}",
                        "sidecars are not run; LoRA adapters are preloaded with --lora-modules"))
    return replicas
