"""Every committed stack's render, applied server-side in `igw synth` order to the real API server
(with the CRDs a GKE cluster provides installed first): every object accepted and stored as
written, every CRD Established, and the controllers act on what was applied — Deployments get
their pods (each pod template passes the server's pod validation and admission, Pod Security
"restricted" as the stacks' Namespaces enforce it) and service-account-token Secrets get a token."""

from __future__ import annotations

import base64
import functools
from typing import Any

import pytest

from igw.engine import SECRET
from igw.kube import ApiError, KubeClient, until
from igw.stackfile import available_stacks

from .gke_standins import gke_standin_crds
from .manifests import install_crds, namespaces_used, stack_manifests, upstream_crds

FIELD_MANAGER = "inference-gateway"
GKE_FIELD_MANAGER = "gke-cluster"


def masked_whole_field(obj: dict[str, Any]) -> bool:
    """A Secret whose whole stringData/data `igw synth` replaced by the "[secret]" placeholder."""
    return obj["kind"] == "Secret" and SECRET in (obj.get("stringData"), obj.get("data"))


def as_stored(obj: dict[str, Any]) -> dict[str, Any]:
    """What the server stores for `obj`: a Secret's write-only stringData lands in data, base64."""
    out = {k: v for k, v in obj.items() if k != "status"}
    if obj["kind"] == "Secret" and isinstance(out.get("stringData"), dict):
        encoded = {k: base64.b64encode(str(v).encode()).decode() for k, v in out.pop("stringData").items()}
        out["data"] = {**(out.get("data") or {}), **encoded}
    return out


def differences(applied: Any, stored: Any, path: str = "") -> list[str]:
    """Where the stored object lost or changed what was applied. Equivalent spellings are not
    differences: quantities the server canonicalizes (`1` -> "1") and empty maps and lists it drops."""
    if stored is None and applied in ({}, []):
        return []
    if isinstance(applied, dict):
        if not isinstance(stored, dict):
            return [f"{path}: applied {applied!r}, stored {stored!r}"]
        return [d for k, v in applied.items() for d in differences(v, stored.get(k), f"{path}.{k}")]
    if isinstance(applied, list):
        if not isinstance(stored, list) or len(stored) != len(applied):
            return [f"{path}: applied {applied!r}, stored {stored!r}"]
        return [d for i, (a, s) in enumerate(zip(applied, stored, strict=True)) for d in differences(a, s, f"{path}[{i}]")]
    if applied == stored or (".resources." in path and isinstance(applied, int) and stored == str(applied)):
        return []
    return [f"{path}: applied {applied!r}, stored {stored!r}"]


def stored(admin: KubeClient, obj: dict[str, Any]) -> dict[str, Any] | None:
    return admin.get(obj["apiVersion"], obj["kind"], obj["metadata"]["name"], obj["metadata"].get("namespace"))


def all_pods_created(admin: KubeClient, deployment: dict[str, Any]) -> bool:
    """The Deployment's ReplicaSets created every pod it asks for (the server admitted them)."""
    status = (stored(admin, deployment) or {}).get("status") or {}
    failures = [c for c in status.get("conditions") or [] if c["type"] == "ReplicaFailure"]
    assert not failures, f"Deployment {deployment['metadata']['name']}: {failures}"
    return status.get("replicas") == deployment["spec"].get("replicas", 1)


def token_filled(admin: KubeClient, secret: dict[str, Any]) -> bool:
    return "token" in ((stored(admin, secret) or {}).get("data") or {})


def cleanup(admin: KubeClient, objects: list[dict[str, Any]]) -> None:
    """Delete a stack's namespaced objects (not CRDs, Namespaces or cluster-wide RBAC, which the
    next stack re-applies), so stacks that share names start from nothing."""
    namespaced = [o for o in objects if o["metadata"].get("namespace")]
    for o in namespaced:
        admin.delete(o["apiVersion"], o["kind"], o["metadata"]["name"], namespace=o["metadata"]["namespace"])
    for o in namespaced:
        until(functools.partial(lambda obj: stored(admin, obj) is None, o), timeout=30,
              what=f"{o['kind']} {o['metadata']['name']} deleted")


@pytest.fixture(scope="module")
def gke_crds(admin: KubeClient) -> list[str]:
    """The upstream CRDs no stack renders itself (Gateway API, GKE policies, GMP): a GKE
    cluster has them. CRDs a render carries are applied by the render."""
    rendered = {o["metadata"]["name"] for s in available_stacks() for o in stack_manifests(s)
                if o["kind"] == "CustomResourceDefinition"}
    return install_crds(admin, [c for c in [*upstream_crds(), *gke_standin_crds()] if c["metadata"]["name"] not in rendered],
                        field_manager=GKE_FIELD_MANAGER)


@pytest.mark.parametrize("stack", available_stacks())
def test_render_applies_in_order(stack: str, admin: KubeClient, gke_crds: list[str]) -> None:
    objects = stack_manifests(stack)
    declared = {o["metadata"]["name"] for o in objects if o["kind"] == "Namespace"}
    for ns in sorted(namespaces_used(objects) - declared):
        admin.ensure_namespace(ns)  # the render's own Namespace objects are applied in order below

    rejected, changed = {}, {}
    try:
        for obj in objects:
            key = f"{obj['kind']} {obj['metadata'].get('namespace', '')}/{obj['metadata']['name']}"
            try:
                result = admin.apply(obj, field_manager=FIELD_MANAGER)
            except ApiError as e:
                rejected[key] = e.message
                continue
            if obj["kind"] == "CustomResourceDefinition":
                admin.wait_established(obj["metadata"]["name"])
            if diff := differences(as_stored(obj), result):
                changed[key] = diff

        assert rejected == {}
        assert changed == {}

        # The controller manager acts on the objects: every Deployment gets all its pods.
        for d in (o for o in objects if o["kind"] == "Deployment"):
            until(functools.partial(all_pods_created, admin, d), timeout=60,
                  what=f"Deployment {d['metadata']['name']} has its {d['spec'].get('replicas', 1)} pods")
        # ... and every service-account-token Secret gets a token for its ServiceAccount.
        for secret in (o for o in objects if o["kind"] == "Secret" and o.get("type") == "kubernetes.io/service-account-token"):
            until(functools.partial(token_filled, admin, secret), timeout=30,
                  what=f"token in Secret {secret['metadata']['name']}")
    finally:
        cleanup(admin, objects)


def test_secrets_keep_their_keys() -> None:
    """`igw synth` once masked a Secret's whole stringData as "[secret]", which the API server
    refuses (`.stringData: expected map`); masked values now keep their keys."""
    masked = [f"{s}: {o['metadata']['name']}" for s in available_stacks() for o in stack_manifests(s)
              if masked_whole_field(o)]
    assert masked == []


def test_pods_refused_by_pod_security_are_reported(admin: KubeClient, namespace: str) -> None:
    """The hostile side of the Deployment check: a rendered Deployment without its containers'
    securityContext, in a namespace labelled like the stacks' (restricted), gets no pod, and the
    check says why."""
    stack = available_stacks()[0]
    ns_labels = next(o["metadata"].get("labels") or {} for o in stack_manifests(stack) if o["kind"] == "Namespace")
    assert ns_labels.get("pod-security.kubernetes.io/enforce") == "restricted", ns_labels
    admin.patch("v1", "Namespace", namespace, {"metadata": {"labels": ns_labels}})
    deployment = next(o for o in stack_manifests(stack) if o["kind"] == "Deployment")
    deployment["metadata"] = {"name": "unhardened", "namespace": namespace}
    for c in deployment["spec"]["template"]["spec"]["containers"]:
        c.pop("securityContext", None)
    deployment["spec"]["template"]["spec"].pop("securityContext", None)
    admin.apply(deployment, field_manager=FIELD_MANAGER)
    with pytest.raises(AssertionError, match='violates PodSecurity "restricted:latest"'):
        until(functools.partial(all_pods_created, admin, deployment), timeout=30, what="pods of the unhardened copy")
