"""Every serving object validates: core objects against the Kubernetes 1.32 schema (strict),
custom objects against the upstream CRDs and against the CRDs the package installs."""

from __future__ import annotations

import kubernetes_validate
import pytest

from igw.engine import SECRET, manifest_of
from tests.conftest import STACKS, rendered
from tests.crd_schema import crd_errors, validate_with_upstream

K8S_VERSION = "1.32"
CUSTOM_GROUPS = ("inference.networking.k8s.io/", "llm-d.ai/")
CLUSTER_PROVIDED_GROUPS = ("secrets-store.csi.x-k8s.io/", "keda.sh/")
"""CRDs the cluster brings (GKE's Secret Manager add-on, KEDA): validated against the upstream CRD."""
NO_PUBLIC_SCHEMA = {"FQDNNetworkPolicy"}
"""GKE's built-in networking.gke.io/v1alpha1 FQDNNetworkPolicy has no published CRD; its exact
shape is pinned by tests/unit/test_builders_external.py."""


def serving_objects(stack: str) -> list[dict]:
    """Kubernetes objects created under the serving components (not the gateway's)."""
    out = []
    for r in rendered(stack).resources:
        if r.custom and "inference-gateway:serving:" in r.urn and r.type.startswith("kubernetes:") and "kind" in r.inputs:
            out.append(manifest_of(r.inputs))
    return out


def _id(obj):
    return f"{obj['kind']}/{obj['metadata']['name']}"


CASES = [(stack, obj) for stack in STACKS for obj in serving_objects(stack)]


@pytest.mark.parametrize(("stack", "obj"), [c for c in CASES if not c[1]["apiVersion"].startswith(CUSTOM_GROUPS + CLUSTER_PROVIDED_GROUPS)
                                             and c[1]["kind"] not in NO_PUBLIC_SCHEMA],
                         ids=lambda v: v if isinstance(v, str) else _id(v))
def test_core_objects_validate_against_kubernetes_1_32(stack, obj):
    if obj["kind"] == "Secret":
        # The engine masks each secret value and keeps the keys: the Secret validates as rendered.
        assert obj["stringData"] and set(obj["stringData"].values()) == {SECRET}
    try:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as err:
        pytest.fail(f"{stack} {_id(obj)}: {err.message} at {list(err.path)}")


@pytest.mark.parametrize(("stack", "obj"), [c for c in CASES if c[1]["apiVersion"].startswith(CUSTOM_GROUPS)],
                         ids=lambda v: v if isinstance(v, str) else _id(v))
def test_custom_objects_validate_against_upstream_and_our_crds(stack, obj):
    assert validate_with_upstream(obj) == [], f"{stack} {_id(obj)}"
    ours = {(o["spec"]["group"], o["spec"]["names"]["kind"]): o for o in serving_objects(stack) if o["kind"] == "CustomResourceDefinition"}
    from components.builders.crds import inference_pool_crd

    group = obj["apiVersion"].split("/")[0]
    crd = ours.get((group, obj["kind"])) or (inference_pool_crd() if obj["kind"] == "InferencePool" else None)
    assert crd is not None, f"no CRD for {_id(obj)}"
    assert crd_errors(obj, crd) == [], f"{stack} {_id(obj)}"


@pytest.mark.parametrize(("stack", "obj"), [c for c in CASES if c[1]["apiVersion"].startswith(CLUSTER_PROVIDED_GROUPS)],
                         ids=lambda v: v if isinstance(v, str) else _id(v))
def test_cluster_provided_objects_validate_against_upstream(stack, obj):
    assert validate_with_upstream(obj) == [], f"{stack} {_id(obj)}"


def test_every_stack_renders_serving_objects():
    for stack in STACKS:
        kinds = {o["kind"] for o in serving_objects(stack)}
        assert {"Deployment", "InferencePool", "InferenceObjective", "Service", "Role"} <= kinds, stack
