"""Endpoint state as seed 004 reports it, from rendered objects plus what runs (pure).

An endpoint is a served model (``models[]``): ``state.ready`` is ``READY`` or ``NOT_READY``, and
``state.config_update`` ``NOT_UPDATING``, ``IN_PROGRESS``, ``UPDATE_FAILED`` or
``UPDATE_CANCELED``. Its served entities are its traffic split's targets (seed 002's ``current``
/ ``challenger``), the model itself, or its external model; each has ``state.deployment``
(``DEPLOYMENT_READY``, ``DEPLOYMENT_CREATING``, ``DEPLOYMENT_FAILED``) and a
``deployment_state_message``.

What serves an endpoint is its InferencePool: the pods the pool selects (model servers, or an
external model's egress proxies) and the pool's picker. A served entity is ready when at least one
of those pods and the picker are ready; the endpoint is ready when every entity that takes
traffic is. Both sources (igw/local/status_source.py, igw/kube/status_source.py) describe each
pool as a ``PoolHealth`` and read the endpoints from the same objects (``specs_from_objects``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable

import yaml

from components.builders.external_model import PROVIDER_ANNOTATION, PROVIDER_URL_ANNOTATION, TASK_ANNOTATION
from components.builders.model_routing import MODEL_ANNOTATION, TAGS_ANNOTATION
from components.builders.model_server import MODELS_ANNOTATION, RUNTIME_ANNOTATION

READY, NOT_READY = "READY", "NOT_READY"
DEPLOYMENT_READY, DEPLOYMENT_CREATING, DEPLOYMENT_FAILED = "DEPLOYMENT_READY", "DEPLOYMENT_CREATING", "DEPLOYMENT_FAILED"
NOT_UPDATING, IN_PROGRESS, UPDATE_FAILED, UPDATE_CANCELED = "NOT_UPDATING", "IN_PROGRESS", "UPDATE_FAILED", "UPDATE_CANCELED"


@dataclass(frozen=True)
class ServedEntitySpec:
    name: str
    model: str
    """What the pods serve for it (a LoRA adapter, a base model, the provider's model name)."""
    traffic_percentage: int
    external_model: dict[str, str] | None = None


@dataclass(frozen=True)
class EndpointSpec:
    name: str
    pool: str
    criticality: str
    tags: dict[str, str]
    served_entities: tuple[ServedEntitySpec, ...]


@dataclass(frozen=True)
class PoolSpec:
    name: str
    namespace: str
    selector: dict[str, str]
    picker: str
    """The picker Deployment (endpointPickerRef name)."""


@dataclass
class PoolHealth:
    """What runs for one pool, as the source sees it."""

    desired: int
    ready: int
    picker_ready: bool
    failed: str | None = None
    """Why the pods cannot become ready (crash loop, rollout deadline), or None."""
    note: str = ""
    """More for the message (which pod is starting, a rollout in progress)."""
    updating: bool = False
    """A rollout of the pool's pods is in progress (cluster source)."""
    scaled_to_zero: bool = False
    """Its autoscaler runs no replica now by policy (min_replicas 0, nothing to serve): ready to
    serve, a request waits in the picker while a replica starts (local source)."""


@dataclass
class EntityState:
    name: str
    traffic_percentage: int
    deployment: str
    deployment_state_message: str
    entity_name: str | None = None
    external_model: dict[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.external_model is not None:
            out["external_model"] = self.external_model
        else:
            out["entity_name"] = self.entity_name
        out["traffic_percentage"] = self.traffic_percentage
        out["state"] = {"deployment": self.deployment, "deployment_state_message": self.deployment_state_message}
        return out


@dataclass
class EndpointState:
    name: str
    pool: str
    ready: str
    config_update: str
    criticality: str
    tags: dict[str, str]
    served_entities: list[EntityState] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "pool": self.pool, "criticality": self.criticality,
                "state": {"ready": self.ready, "config_update": self.config_update},
                "tags": [{"key": k, "value": v} for k, v in sorted(self.tags.items())],
                "served_entities": [e.to_json() for e in self.served_entities]}


def _meta(o: dict[str, Any]) -> dict[str, Any]:
    return o.get("metadata") or {}


def _criticality(priority: Any) -> str:
    p = int(priority or 0)
    return "Critical" if p > 0 else "Sheddable" if p < 0 else "Standard"


def pool_specs(objects: Iterable[dict[str, Any]]) -> dict[str, PoolSpec]:
    out = {}
    for o in objects:
        if o.get("kind") == "InferencePool":
            spec = o.get("spec") or {}
            name = _meta(o).get("name", "")
            out[name] = PoolSpec(name, _meta(o).get("namespace") or "default",
                                 dict((spec.get("selector") or {}).get("matchLabels") or {}),
                                 str((spec.get("endpointPickerRef") or {}).get("name") or f"{name}-epp"))
    return out


def selected(deployment: dict[str, Any], pool: PoolSpec) -> bool:
    labels = ((((deployment.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {})
    return bool(pool.selector) and all(labels.get(k) == v for k, v in pool.selector.items())


def specs_from_objects(objects: list[dict[str, Any]]) -> tuple[list[EndpointSpec], dict[str, PoolSpec]]:
    """Endpoints and pools from rendered (or live) objects: InferenceObjectives (one per endpoint:
    name, pool, priority, tags), InferenceModelRewrites (the split), the pickers' ConfigMaps
    (served-model names) and the Deployments a pool selects (external models' annotations)."""
    pools = pool_specs(objects)
    rewrites: dict[tuple[str, str], list[tuple[str, int]]] = {}
    deployed: dict[str, dict[str, str]] = {}
    external: dict[str, dict[str, str]] = {}
    for o in objects:
        kind, spec = o.get("kind"), o.get("spec") or {}
        if kind == "InferenceModelRewrite":
            pool = (spec.get("poolRef") or {}).get("name", "")
            for rule in spec.get("rules") or []:
                targets = [(str(t["modelRewrite"]), int(t.get("weight", 1))) for t in rule.get("targets") or []]
                for m in rule.get("matches") or []:
                    rewrites[(pool, str((m.get("model") or {}).get("value")))] = targets
        elif kind == "ConfigMap" and "picker.yaml" in (o.get("data") or {}):
            cfg = yaml.safe_load(o["data"]["picker.yaml"]) or {}
            epp = _meta(o).get("name", "")
            for p in pools.values():
                if p.picker == epp:
                    deployed[p.name] = dict(((cfg.get("models") or {}).get("deployed")) or {})
        elif kind == "Deployment":
            annotations = ((spec.get("template") or {}).get("metadata") or {}).get("annotations") or {}
            if annotations.get(RUNTIME_ANNOTATION) == "external":
                for p in pools.values():
                    if selected(o, p):
                        external[p.name] = {"provider": annotations.get(PROVIDER_ANNOTATION, ""),
                                            "name": annotations.get(MODELS_ANNOTATION, ""),
                                            "task": annotations.get(TASK_ANNOTATION, ""),
                                            "api_base": annotations.get(PROVIDER_URL_ANNOTATION, "")}
    endpoints = []
    for o in objects:
        if o.get("kind") != "InferenceObjective":
            continue
        meta, spec = _meta(o), o.get("spec") or {}
        name = (meta.get("annotations") or {}).get(MODEL_ANNOTATION) or meta.get("name", "")
        pool = (spec.get("poolRef") or {}).get("name", "")
        tags = json.loads((meta.get("annotations") or {}).get(TAGS_ANNOTATION) or "{}")
        by_model = {m: n for n, m in (deployed.get(pool) or {}).items()}
        if pool in external:
            entities = (ServedEntitySpec(name, external[pool]["name"], 100, external[pool]),)
        else:
            targets = rewrites.get((pool, name)) or [(name, 100)]
            total = sum(w for _, w in targets) or 1
            entities = tuple(ServedEntitySpec(by_model.get(m, m), m, round(100 * w / total)) for m, w in targets)
        endpoints.append(EndpointSpec(name, pool, _criticality(spec.get("priority")), tags, entities))
    return sorted(endpoints, key=lambda e: e.name), pools


def endpoint_kinds(objects: list[dict[str, Any]]) -> dict[str, str]:
    """Endpoint name -> ``external`` / ``self-hosted`` (seed 004's conversion rule compares them)."""
    endpoints, _ = specs_from_objects(objects)
    return {e.name: "external" if any(s.external_model for s in e.served_entities) else "self-hosted" for e in endpoints}


def entity_deployment(h: PoolHealth | None) -> tuple[str, str]:
    if h is None:
        return DEPLOYMENT_CREATING, "no pods found for the pool"
    counts = f"{h.ready}/{h.desired} pods ready"
    if h.failed:
        return DEPLOYMENT_FAILED, f"{counts}: {h.failed}"
    if h.ready >= 1 and h.picker_ready:
        return DEPLOYMENT_READY, counts + (f"; {h.note}" if h.note else "")
    if h.scaled_to_zero and h.picker_ready:
        return DEPLOYMENT_READY, f"{counts}; scaled to zero: a request waits in the picker while a replica starts"
    why = "the pool's picker is not ready" if h.ready >= 1 else (h.note or "waiting for pods")
    return DEPLOYMENT_CREATING, f"{counts}: {why}"


def endpoint_states(endpoints: list[EndpointSpec], health: dict[str, PoolHealth], config_update: str,
                    updating_pools: Iterable[str] = ()) -> list[EndpointState]:
    """``config_update`` applies to every endpoint (a local update applies the whole stack); a pool
    in ``updating_pools`` (a cluster rollout in progress) is IN_PROGRESS on its own."""
    updating = set(updating_pools)
    out = []
    for e in endpoints:
        h = health.get(e.pool)
        state, message = entity_deployment(h)
        entities = [EntityState(s.name, s.traffic_percentage, state, message,
                                entity_name=None if s.external_model else s.model, external_model=s.external_model)
                    for s in e.served_entities]
        serving = [x for x in entities if x.traffic_percentage > 0]
        ready = READY if serving and all(x.deployment == DEPLOYMENT_READY for x in serving) else NOT_READY
        update = IN_PROGRESS if e.pool in updating and config_update == NOT_UPDATING else config_update
        out.append(EndpointState(e.name, e.pool, ready, update, e.criticality, dict(e.tags), entities))
    return out


def report_json(stack: str, source: str, states: list[EndpointState], update: dict[str, Any] | None) -> dict[str, Any]:
    return {"stack": stack, "source": source, "update": update, "endpoints": [s.to_json() for s in states]}


def report_text(report: dict[str, Any]) -> str:
    lines = [f"stack {report['stack']} ({report['source']})"]
    update = report.get("update") or {}
    if update:
        lines.append("  update: " + ", ".join(f"{k} {v}" for k, v in update.items() if v not in (None, "")))
    for e in report["endpoints"]:
        tags = ", ".join(f"{t['key']}={t['value']}" for t in e["tags"])
        lines.append(f"  {e['name']}  {e['state']['ready']}  config {e['state']['config_update']}  pool {e['pool']}"
                     + (f"  tags {tags}" if tags else ""))
        for s in e["served_entities"]:
            what = (f"external {s['external_model']['provider']}/{s['external_model']['name']} ({s['external_model']['task']})"
                    if "external_model" in s else s.get("entity_name"))
            lines.append(f"    {s['name']:<24} {s['traffic_percentage']:>3}%  {s['state']['deployment']:<20} {what}: "
                         f"{s['state']['deployment_state_message']}")
    return "\n".join(lines)

