"""The stack's namespace under the mock engine: created first with its Pod Security labels, every
other Kubernetes object depends on it and lives in it, and adopting one creates nothing."""

from __future__ import annotations

import copy

import pytest

from components.builders.pod_security import restricted_violations
from igw.stackfile import read_stack
from tests.conftest import STACKS, render_with, rendered

NAMESPACE = "kubernetes:core/v1:Namespace"
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}


def k8s_resources(synthesis):
    return [r for r in synthesis.resources if r.custom and r.type.startswith("kubernetes:") and not r.type.startswith("kubernetes:index:")]


@pytest.mark.parametrize("stack", STACKS)
def test_every_kubernetes_object_depends_on_the_namespace_and_lives_in_it(stack):
    synthesis = rendered(stack)
    ns = synthesis.one(NAMESPACE)
    name = ns.inputs["metadata"]["name"]
    assert ns.inputs["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    others = [r for r in k8s_resources(synthesis) if r.urn != ns.urn]
    assert others
    independent = [r.urn for r in others if ns.urn not in r.dependencies]
    assert independent == [], f"{stack}: not waiting for namespace {name}:\n" + "\n".join(independent)
    elsewhere = [f"{r.urn}: {r.inputs['metadata'].get('namespace')}" for r in others
                 if r.type.rsplit(":", 1)[-1] not in CLUSTER_SCOPED and r.inputs["metadata"].get("namespace") != name]
    assert elsewhere == [], f"{stack}: objects outside {name}:\n" + "\n".join(elsewhere)
    assert synthesis.outputs["namespace"] == name and synthesis.outputs["podSecurity"] == "restricted"


def test_namespaces_are_per_stack():
    names = {s: rendered(s).one(NAMESPACE).inputs["metadata"]["name"] for s in ("dev", "prod", "local")}
    assert names == {"dev": "igw-dev", "prod": "igw-prod", "local": "igw-local"}


def test_an_adopted_namespace_is_neither_created_nor_waited_for():
    synthesis = render_with("dev", namespace="serving", create_namespace=False)
    assert synthesis.of_type(NAMESPACE) == []
    deployment = synthesis.one("kubernetes:apps/v1:Deployment", "vllm-llama3-8b-instruct")
    assert deployment.inputs["metadata"]["namespace"] == "serving"
    assert synthesis.outputs["namespace"] == "serving"


@pytest.mark.parametrize("stack", STACKS)
def test_every_pod_meets_the_restricted_profile_its_namespace_enforces(stack):
    pods = {r.urn: r.inputs["spec"]["template"]["spec"] for r in rendered(stack).of_type("kubernetes:apps/v1:Deployment")}
    assert pods
    assert {urn: restricted_violations(pod) for urn, pod in pods.items()} == {urn: [] for urn in pods}


def test_a_root_model_server_is_named_and_lowers_the_namespace_to_baseline():
    servers = copy.deepcopy(read_stack("dev")["inference-gateway:model_servers"])
    servers[0]["runtime_overrides"] = {"run_as_user": 0}
    synthesis = render_with("dev", model_servers=servers)
    meta = synthesis.one(NAMESPACE).inputs["metadata"]
    assert meta["labels"]["pod-security.kubernetes.io/enforce"] == "baseline"
    assert meta["annotations"] == {"inference-gateway.dev/pod-security-reason":
                                   "model server vllm-llama3-8b-instruct: runtime_overrides.run_as_user is 0 (the image needs root)"}
    assert synthesis.outputs["podSecurity"] == "baseline"
