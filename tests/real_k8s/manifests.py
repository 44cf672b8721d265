"""What the real-cluster tests apply: the upstream CRDs a GKE cluster provides, and each committed
stack's render in apply order (`igw synth` order: CRDs, Namespaces, identities, config, RBAC,
then workloads and routing)."""

from __future__ import annotations

import copy
from typing import Any, Iterable

import yaml

from igw.kube import KubeClient
from igw.synth import sorted_manifests
from tests.conftest import rendered
from tests.crd_schema import crd_files


def upstream_crds() -> list[dict[str, Any]]:
    """Every CRD under ../shared/schemas/crds (Gateway API, GKE policies, GIE, llm-d, GMP) and the
    add-ons' in tests/fixtures/crds (KEDA, Secrets Store CSI)."""
    crds = []
    for path in crd_files():
        crds += [d for d in yaml.safe_load_all(path.read_text()) if d and d.get("kind") == "CustomResourceDefinition"]
    return crds


def stack_manifests(stack: str) -> list[dict[str, Any]]:
    """The stack's Kubernetes objects in the order `igw synth` writes manifests/NNN-*.yaml."""
    return copy.deepcopy(sorted_manifests(rendered(stack)))


def crd_name(obj: dict[str, Any]) -> str:
    return obj["metadata"]["name"]


def install_crds(client: KubeClient, crds: Iterable[dict[str, Any]], *, field_manager: str) -> list[str]:
    """Apply CRDs and wait until each is Established; returns their names."""
    names = []
    for crd in crds:
        client.apply(crd, field_manager=field_manager)
        names.append(crd_name(crd))
    for name in names:
        client.wait_established(name)
    return names


def namespaces_used(objects: Iterable[dict[str, Any]]) -> set[str]:
    return {ns for o in objects if (ns := (o.get("metadata") or {}).get("namespace"))}


def relocate(objects: Iterable[dict[str, Any]], namespace: str) -> list[dict[str, Any]]:
    """Copies of namespaced objects moved into `namespace` (RoleBinding subjects that named the
    old namespace follow), so each test gets a namespace of its own."""
    out = []
    for obj in objects:
        o = copy.deepcopy(obj)
        old = o["metadata"].get("namespace")
        if old is not None:
            o["metadata"]["namespace"] = namespace
        for subject in o.get("subjects") or []:
            if subject.get("kind") == "ServiceAccount" and subject.get("namespace") == old:
                subject["namespace"] = namespace
        out.append(o)
    return out
