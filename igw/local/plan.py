"""From rendered Kubernetes objects to what runs locally: a LocalPlan (pure, no processes).

`build_plan` reads, in this order: the InferencePools with their picker ConfigMaps and
GCPBackendPolicy timeouts (plan_pools.py), the Deployments their selectors pick, one simulated
replica per pod with its vLLM args translated (plan_replicas.py), the Gateways' listeners and the
HTTPRoutes attached to them (plan_routes.py), and the InferenceObjectives and
InferenceModelRewrites that name the served models (here). Everything else is listed as skipped
with the reason (plan_skipped.py); rendered_objects.py loads and names the objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .plan_pools import Pool, picker_refs, place_deployments, read_pools
from .plan_replicas import Replica
from .plan_routes import Listener, gateway_listeners
from .plan_skipped import skipped_objects
from .rendered_objects import PlanError, object_meta


@dataclass
class ServedModel:
    name: str
    pool: str
    priority: int | None
    criticality: str
    targets: list[tuple[str, int]]      # rewrite targets (model, weight); empty = served as is


@dataclass
class LocalPlan:
    listeners: list[Listener]
    pools: dict[str, Pool]
    models: list[ServedModel]
    skipped: list[tuple[str, str]]      # ("Kind namespace/name", reason)
    objects: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)

    @property
    def replicas(self) -> list[Replica]:
        """Every model-server pod once (a runtime's REST and gRPC pools select the same pods)."""
        return list({r.name: r for p in self.pools.values() for r in p.replicas}.values())


def build_plan(objects: list[dict[str, Any]], *, port: int = 8080, address_base: str = "127.0.1.10") -> LocalPlan:
    """Translate rendered objects. `port` serves the first HTTP listener (Gateway port 80 by
    convention); further listeners get port+1, port+2, ... Replicas get consecutive loopback
    addresses from `address_base`."""
    objs = {(o["kind"], *object_meta(o)): o for o in objects}
    problems: list[str] = []
    skipped: list[tuple[str, str]] = []
    pools = read_pools(objects, objs, problems)
    pickers = picker_refs(objs, pools)
    used_cms = place_deployments(objects, objs, pools, pickers, address_base, problems, skipped)
    listeners = gateway_listeners(objects, pools, port, problems, skipped)
    models = _served_models(objects)
    skipped += skipped_objects(objects, used_cms, pools, set(pickers.values()))
    if not pools:
        raise PlanError("no InferencePool in the rendered objects: nothing to run locally")
    if not listeners:
        raise PlanError("no Gateway with an HTTP listener in the rendered objects")
    return LocalPlan(listeners=listeners, pools=pools, models=models, skipped=skipped, objects=objects,
                     warnings=problems)


def _served_models(objects: list[dict[str, Any]]) -> list[ServedModel]:
    """The models the summary lists: one per InferenceObjective, with the pool's rewrite targets."""
    models: list[ServedModel] = []
    rewrites: dict[tuple[str, str], list[tuple[str, int]]] = {}
    for o in objects:
        if o.get("kind") == "InferenceModelRewrite":
            pool = ((o.get("spec") or {}).get("poolRef") or {}).get("name", "")
            for rule in (o.get("spec") or {}).get("rules") or []:
                targets = [(str(t["modelRewrite"]), int(t.get("weight", 1))) for t in rule.get("targets") or []
                           if t.get("modelRewrite")]
                for m in rule.get("matches") or []:
                    v = (m.get("model") or {}).get("value")
                    if v:
                        rewrites[(pool, v)] = targets
    for o in objects:
        if o.get("kind") == "InferenceObjective":
            _, oname = object_meta(o)
            spec = o.get("spec") or {}
            pool = (spec.get("poolRef") or {}).get("name", "")
            model = ((o.get("metadata") or {}).get("annotations") or {}).get("inference-gateway.dev/model") or oname
            prio = spec.get("priority")
            crit = "Sheddable" if prio is not None and prio < 0 else "Critical" if prio is not None and prio > 0 else "Standard"
            models.append(ServedModel(model, pool, prio, crit, rewrites.get((pool, model), [])))
    return models
