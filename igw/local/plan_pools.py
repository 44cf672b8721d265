"""InferencePools → the pools a local run serves, with their pickers and model servers (pure).

A `Pool` carries the InferencePool's selector, targetPorts, endpointPickerRef (failureMode) and
appProtocol, the picker config from its ConfigMap `<pool>-epp` (key `picker.yaml`), its backend
timeout (GCPBackendPolicy `default.timeoutSec`) and its picker message timeout (pool annotation).
`place_deployments` then sorts every Deployment: a model server of the pools whose selector
matches its pod labels (its replicas from plan_replicas.py), a pool's picker (its flags, whether
it requires API keys), or skipped.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

import yaml

from components.builders.inference_pool import MESSAGE_TIMEOUT_ANNOTATION

from .picker_deployment import PickerDeployment
from .plan_replicas import Replica, configmap_volumes, model_server_replicas, pod_labels
from .plan_skipped import PICKER_REPLACED
from .rendered_objects import Objects, duration_seconds, object_meta, object_ref

POOL_GROUP = "inference.networking.k8s.io"
POOL_KIND = "InferencePool"
DEFAULT_BACKEND_TIMEOUT_S = 30.0  # GCPBackendPolicy default.timeoutSec default
DEFAULT_MESSAGE_TIMEOUT_S = 1.0  # without the pool annotation: GKE's own callout default (1000 ms)

@dataclass
class Pool:
    name: str
    namespace: str
    selector: dict[str, str]
    target_ports: tuple[int, ...]
    failure_mode: str           # FailOpen | FailClose
    picker_config: dict[str, Any]
    timeout_s: float
    replicas: list[Replica] = field(default_factory=list)
    api_keys: bool = False      # its picker Deployment requires API keys (--api-keys-file)
    message_timeout_s: float = DEFAULT_MESSAGE_TIMEOUT_S   # per picker answer (pool annotation)
    app_protocol: str = "http"  # spec.appProtocol: kubernetes.io/h2c = HTTP/2 (gRPC) to the pods
    picker: PickerDeployment = field(default_factory=PickerDeployment)

    @property
    def fail_open(self) -> bool:
        return self.failure_mode == "FailOpen"

    def ext_proc_modes(self) -> tuple[str, str]:
        """(request, response) body modes shared by Envoy's filter and the picker, measured on
        Envoy 1.40 with the picker killed (SIGKILL) or frozen (SIGSTOP) mid-request:

        * request BUFFERED: Envoy keeps the body, so a FailOpen pool can continue without the
          picker, and `message_timeout` bounds a frozen picker (FailOpen: the request goes on
          without it; FailClose: 503). With FULL_DUPLEX_STREAMED Envoy holds no copy once a chunk
          went to the picker (envoyproxy/envoy#41276) and waited forever on a frozen one.
        * response STREAMED: Envoy keeps each chunk until the picker answers it, so when the picker
          dies or freezes mid-response a FailOpen pool forwards the rest unchanged (a frozen one
          costs one message timeout). With FULL_DUPLEX_STREAMED every stream in flight was cut.
        """
        return "BUFFERED", "STREAMED"

    def local_picker_config(self) -> dict[str, Any]:
        """The rendered picker.yaml with the body modes this runner's Envoy uses."""
        req, resp = self.ext_proc_modes()
        cfg = dict(self.picker_config)
        cfg["ext_proc"] = {**(cfg.get("ext_proc") or {}), "request_body_mode": req, "response_body_mode": resp}
        return cfg


def read_pools(objects: list[dict[str, Any]], objs: Objects, problems: list[str]) -> dict[str, Pool]:
    """Every InferencePool by name, with its picker config and backend timeout."""
    pools: dict[str, Pool] = {}
    for o in objects:
        if o.get("kind") != POOL_KIND:
            continue
        ns, name = object_meta(o)
        spec = o.get("spec") or {}
        sel = (spec.get("selector") or {}).get("matchLabels") or {}
        epp = spec.get("endpointPickerRef") or {}
        cm = objs.get(("ConfigMap", ns, f"{epp.get('name', name + '-epp')}")) or objs.get(("ConfigMap", ns, f"{name}-epp"))
        picker_cfg: dict[str, Any] = {}
        if cm is not None:
            raw = (cm.get("data") or {}).get("picker.yaml")
            if raw:
                picker_cfg = yaml.safe_load(raw) or {}
        else:
            problems.append(f"InferencePool {ns}/{name}: picker ConfigMap {epp.get('name', name + '-epp')} "
                            "(key picker.yaml) not found; the picker runs with its defaults")
        annotations = (o.get("metadata") or {}).get("annotations") or {}
        pools[name] = Pool(
            message_timeout_s=duration_seconds(annotations.get(MESSAGE_TIMEOUT_ANNOTATION)) or DEFAULT_MESSAGE_TIMEOUT_S,
            app_protocol=str(spec.get("appProtocol") or "http"),
            name=name, namespace=ns, selector={str(k): str(v) for k, v in sel.items()},
            target_ports=tuple(int(p["number"]) for p in spec.get("targetPorts") or [] if "number" in p) or (8000,),
            failure_mode=str(epp.get("failureMode") or "FailClose"),
            picker_config=picker_cfg, timeout_s=DEFAULT_BACKEND_TIMEOUT_S,
        )
    for o in objects:
        if o.get("kind") == "GCPBackendPolicy":
            ref = (o.get("spec") or {}).get("targetRef") or {}
            t = ((o.get("spec") or {}).get("default") or {}).get("timeoutSec")
            if ref.get("kind") == POOL_KIND and ref.get("name") in pools and t is not None:
                pools[ref["name"]].timeout_s = float(t)
    return pools


def picker_refs(objs: Objects, pools: dict[str, Pool]) -> dict[str, tuple[str, str]]:
    """Pool name → (namespace, name) of its picker Deployment and Service (endpointPickerRef,
    `<pool>-epp` by default)."""
    return {p.name: (p.namespace, str(((objs.get((POOL_KIND, p.namespace, p.name)) or {}).get("spec") or {})
                                      .get("endpointPickerRef", {}).get("name") or f"{p.name}-epp"))
            for p in pools.values()}


def place_deployments(objects: list[dict[str, Any]], objs: Objects, pools: dict[str, Pool],
                      pickers: dict[str, tuple[str, str]], address_base: str,
                      problems: list[str], skipped: list[tuple[str, str]]) -> set[str]:
    """Give each pool the replicas of the Deployments it selects (consecutive addresses from
    `address_base`) and its picker Deployment; list the other Deployments as skipped. Returns the
    ConfigMaps the replicas mount."""
    addr = ipaddress.IPv4Address(address_base)
    used_cms: set[str] = set()
    for o in objects:
        if o.get("kind") != "Deployment":
            continue
        ns, dname = object_meta(o)
        labels = pod_labels(o)
        selecting = [p for p in pools.values()
                     if p.namespace == ns and p.selector and all(labels.get(k) == v for k, v in p.selector.items())]
        if not selecting:
            picked_for = [p for p in pools.values() if pickers[p.name] == (ns, dname)]
            if picked_for:
                skipped.append((object_ref(o), PICKER_REPLACED))
                _attach_picker(o, picked_for)
            else:
                skipped.append((object_ref(o), "not selected by any InferencePool (only model servers run locally)"))
            continue
        replicas = model_server_replicas(o, objs, {f"{p.namespace}/{p.name}": p.target_ports for p in selecting},
                                         addr, problems, skipped)
        if replicas is None:
            continue
        used_cms.update(configmap_volumes(((o.get("spec") or {}).get("template") or {}).get("spec") or {}))
        for p in selecting:
            p.replicas.extend(replicas)
        addr += len(replicas)
    return used_cms


def _attach_picker(deployment: dict[str, Any], pools: list[Pool]) -> None:
    """The picker Deployment of `pools`: its flags and probes, and whether it requires API keys."""
    for p in pools:
        p.picker = PickerDeployment.from_manifest(deployment)
    tmpl = ((deployment.get("spec") or {}).get("template") or {})
    args = [str(a) for c in (tmpl.get("spec") or {}).get("containers") or [] for a in c.get("args") or []]
    if any(a.startswith("--api-keys-file") for a in args):
        # The Secret is masked offline: `igw up` takes the keys from a local source
        # (igw/local/secrets.py) and refuses to start the pool without them.
        for p in pools:
            p.api_keys = True
