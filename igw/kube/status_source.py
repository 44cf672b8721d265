"""Endpoint state from a cluster (GKE, or the local kube-apiserver harness): what `igw status
--stack S --kubeconfig FILE` reads.

Per InferencePool (igw/endpoint_state.py): the Deployments whose pod template it selects
(``spec.replicas`` desired, ``status.readyReplicas`` ready; a ``Progressing`` condition that is
``False`` with reason ``ProgressDeadlineExceeded``, or ``ReplicaFailure``, is a failed
deployment; ``observedGeneration`` behind ``generation`` or ``updatedReplicas`` below the desired
count is a rollout in progress, so the endpoint's ``config_update`` is ``IN_PROGRESS`` while the
old pods keep serving); its picker Deployment (ready once one replica is); and the pool's own
status: a parent gateway condition that is ``False`` (``Accepted``, ``ResolvedRefs``) fails
it with the gateway's reason. A pool whose Deployments all run 0 replicas because a KEDA
ScaledObject with ``minReplicaCount: 0`` scaled them there is scaled to zero (ready while its
picker is: a request waits there while a replica starts), not still being created. The endpoints themselves come from the cluster's
InferenceObjectives, InferenceModelRewrites and picker ConfigMaps, as for a render.
"""

from __future__ import annotations

import base64
import tempfile
from pathlib import Path
from typing import Any, Protocol

import yaml

from ..endpoint_state import NOT_UPDATING, PoolHealth, PoolSpec, endpoint_states, report_json, selected, specs_from_objects
from .client import KubeClient

KINDS = (
    ("inference.networking.k8s.io/v1", "InferencePool"),
    ("llm-d.ai/v1alpha2", "InferenceObjective"),
    ("llm-d.ai/v1alpha2", "InferenceModelRewrite"),
    ("v1", "ConfigMap"),
    ("apps/v1", "Deployment"),
    ("keda.sh/v1alpha1", "ScaledObject"),
)


class Lister(Protocol):
    def list(self, api_version: str, kind: str, namespace: str | None = None) -> dict[str, Any]: ...


def read_objects(client: Lister, namespace: str) -> list[dict[str, Any]]:
    """The objects endpoint state is read from (kinds the cluster does not serve are skipped)."""
    out: list[dict[str, Any]] = []
    for api_version, kind in KINDS:
        try:
            items = client.list(api_version, kind, namespace).get("items") or []
        except LookupError:
            continue
        out += [{**o, "apiVersion": api_version, "kind": kind} for o in items]
    return out


def _condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next((c for c in ((obj.get("status") or {}).get("conditions") or []) if c.get("type") == kind), None)


def deployment_problem(d: dict[str, Any]) -> str | None:
    name = (d.get("metadata") or {}).get("name")
    progressing = _condition(d, "Progressing")
    if progressing and progressing.get("status") == "False":
        return f"Deployment {name}: {progressing.get('reason')}: {progressing.get('message', '')}".rstrip(": ")
    failure = _condition(d, "ReplicaFailure")
    if failure and failure.get("status") == "True":
        return f"Deployment {name}: {failure.get('reason')}: {failure.get('message', '')}".rstrip(": ")
    return None


def rolling_out(d: dict[str, Any]) -> bool:
    meta, spec, status = d.get("metadata") or {}, d.get("spec") or {}, d.get("status") or {}
    desired = int(spec.get("replicas", 1))
    return (int(status.get("observedGeneration", 0)) < int(meta.get("generation", 0))
            or int(status.get("updatedReplicas", 0)) < desired)


def pool_problem(pool: dict[str, Any]) -> str | None:
    """A gateway that refused the pool (status.parents[].conditions False)."""
    for parent in ((pool.get("status") or {}).get("parents") or []):
        for c in parent.get("conditions") or []:
            if c.get("status") == "False":
                ref = (parent.get("parentRef") or {}).get("name", "?")
                return f"InferencePool {c.get('type')} False for {ref}: {c.get('reason')}: {c.get('message', '')}".rstrip(": ")
    return None


def scaled_to_zero_by_keda(deployments: list[dict[str, Any]], objects: list[dict[str, Any]]) -> bool:
    """Every one of `deployments` is at 0 replicas and the target of a ScaledObject that may idle it at 0."""
    idle_targets = {(o.get("spec") or {}).get("scaleTargetRef", {}).get("name") for o in objects
                    if o.get("kind") == "ScaledObject" and int((o.get("spec") or {}).get("minReplicaCount", 0)) == 0}
    return bool(deployments) and all(int((d.get("spec") or {}).get("replicas", 1)) == 0
                                     and (d.get("metadata") or {}).get("name") in idle_targets for d in deployments)


def pool_health(objects: list[dict[str, Any]], pools: dict[str, PoolSpec]) -> tuple[dict[str, PoolHealth], list[str]]:
    """Per pool its PoolHealth, and the pools whose pods are rolling out."""
    deployments = [o for o in objects if o.get("kind") == "Deployment"]
    raw_pools = {(o.get("metadata") or {}).get("name"): o for o in objects if o.get("kind") == "InferencePool"}
    health, updating = {}, []
    for name, spec in pools.items():
        mine = [d for d in deployments if selected(d, spec)]
        picker = next((d for d in deployments if (d.get("metadata") or {}).get("name") == spec.picker), None)
        desired = sum(int((d.get("spec") or {}).get("replicas", 1)) for d in mine)
        ready = sum(int((d.get("status") or {}).get("readyReplicas", 0)) for d in mine)
        problems = [p for p in (*(deployment_problem(d) for d in mine), pool_problem(raw_pools.get(name) or {})) if p]
        rollout = [d["metadata"]["name"] for d in mine if rolling_out(d)]
        note = f"rollout of {', '.join(rollout)} in progress (the old pods serve until the new ones are ready)" if rollout else ""
        if not mine:
            note = "no Deployment selected by the pool"
        health[name] = PoolHealth(desired, ready, picker is not None and int((picker.get("status") or {}).get("readyReplicas", 0)) >= 1,
                                  failed="; ".join(problems) or None, note=note, updating=bool(rollout),
                                  scaled_to_zero=scaled_to_zero_by_keda(mine, objects))
        if rollout:
            updating.append(name)
    return health, updating


def cluster_report(stack: str, client: Lister, namespace: str) -> dict[str, Any]:
    objects = read_objects(client, namespace)
    endpoints, pools = specs_from_objects(objects)
    health, updating = pool_health(objects, pools)
    states = endpoint_states(endpoints, health, NOT_UPDATING, updating)
    return report_json(stack, f"cluster, namespace {namespace}", states, {"rollouts_in_progress": ", ".join(updating)})


def client_from_kubeconfig(path: Path, context: str | None = None, token: str | None = None) -> KubeClient:
    """A KubeClient for a kubeconfig's context: its server and CA, and a bearer token (the user's
    ``token``/``tokenFile``, or ``token``: e.g. ``gcloud auth print-access-token`` for a GKE
    kubeconfig, whose exec plugin is not run here)."""
    doc = yaml.safe_load(path.read_text()) or {}
    name = context or doc.get("current-context")
    ctx = next((c.get("context") or {} for c in doc.get("contexts") or [] if c.get("name") == name), None)
    if ctx is None:
        raise ValueError(f"{path}: context {name!r} is not defined")
    cluster = next((c.get("cluster") or {} for c in doc.get("clusters") or [] if c.get("name") == ctx.get("cluster")), {})
    user = next((u.get("user") or {} for u in doc.get("users") or [] if u.get("name") == ctx.get("user")), {})
    if token is None:
        token = user.get("token") or (Path(user["tokenFile"]).read_text().strip() if user.get("tokenFile") else None)
    if not token:
        raise ValueError(f"{path}: user {ctx.get('user')!r} has no token (an exec plugin is not run here); pass --token "
                         "(for GKE: --token \"$(gcloud auth print-access-token)\")")
    ca = cluster.get("certificate-authority")
    if not ca and cluster.get("certificate-authority-data"):
        f = tempfile.NamedTemporaryFile(prefix="igw-status-ca-", suffix=".crt", delete=False)
        f.write(base64.b64decode(cluster["certificate-authority-data"]))
        f.close()
        ca = f.name
    if not ca:
        raise ValueError(f"{path}: cluster {ctx.get('cluster')!r} has no certificate-authority")
    return KubeClient(str(cluster["server"]), token=token, ca_file=Path(ca))

