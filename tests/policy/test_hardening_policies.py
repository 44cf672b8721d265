"""Hardening policies (policy/inference_gateway_policies/hardening.py) on rendered stacks: every
committed stack passes them, each hardening gap is named exactly, and the environment decides
whether the mandatory policy or its advisory twin reports it."""

from __future__ import annotations

import copy

import pytest

from igw.policy_checks import check_stack, resources_of
from igw.stackfile import available_stacks, read_stack
from tests.conftest import render_with, rendered
from tests.policy.conftest import POLICIES, mutate, replace, validate, validate_stack

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
NAMESPACE = "kubernetes:core/v1:Namespace"
CONTAINER = "spec.template.spec.containers.0"
HARDENING = ["model-servers-hardened", "workloads-hardened", "network-policies-present", "namespace-not-default",
             "namespace-pod-security"]
SERVER_FIX = ("The program renders all of these for every runtime preset (components/catalog/hardening.py); "
              "runtime_overrides.run_as_user: 0 turns them off. Fix: use an image that runs as a non-root user and "
              "set runtime_overrides.run_as_user to it.")
NAMESPACE_FIX = "Fix: leave the stack's namespace unset (it defaults to name_prefix) or set namespace to one of the stack's own."


def model_server(stack: str = "prod"):
    return rendered(stack).one(DEPLOYMENT, "vllm-llama3-8b-instruct")


def picker(stack: str = "prod"):
    return rendered(stack).one(DEPLOYMENT, "llama3-8b-epp")


def test_every_hardening_check_is_mandatory_in_production_and_advisory_elsewhere():
    for name in HARDENING:
        assert POLICIES[name].enforcement_level.value == "mandatory"
        assert POLICIES[f"{name}-advisory"].enforcement_level.value == "advisory"


@pytest.mark.parametrize("stack", available_stacks())
def test_every_committed_stack_passes_the_hardening_policies(stack):
    report = check_stack(stack, resources_of(rendered(stack)))
    hardening = {n for name in HARDENING for n in (name, f"{name}-advisory")}
    assert [f"{v.policy}: {v.message}" for v in report.violations if v.policy in hardening] == []


@pytest.mark.parametrize(("path", "value", "problem"), [
    pytest.param("readOnlyRootFilesystem", False, "readOnlyRootFilesystem is not true", id="writable-root"),
    pytest.param("allowPrivilegeEscalation", None, "allowPrivilegeEscalation is not false", id="escalation-unset"),
    pytest.param("capabilities", {"drop": ["NET_RAW"]}, "capabilities.drop does not include ALL", id="caps-kept"),
    pytest.param("capabilities", {"drop": ["ALL"], "add": ["SYS_ADMIN"]}, "capabilities.add adds SYS_ADMIN", id="caps-added"),
    pytest.param("runAsUser", 0, "may run as root (runAsNonRoot/runAsUser)", id="root"),
])
def test_model_server_hardening_gaps_are_named(path, value, problem):
    broken = mutate(model_server(), f"{CONTAINER}.securityContext.{path}", value)
    assert validate("model-servers-hardened", broken) == [
        f"Deployment 'vllm-llama3-8b-instruct': container 'vllm' is not hardened: {problem}. {SERVER_FIX}"
    ]


def test_seccomp_from_the_pod_counts_and_its_absence_is_named():
    no_container_seccomp = mutate(model_server(), f"{CONTAINER}.securityContext.seccompProfile", None)
    assert validate("model-servers-hardened", no_container_seccomp) == []  # the pod's RuntimeDefault applies
    neither = mutate(no_container_seccomp, "spec.template.spec.securityContext.seccompProfile", None)
    assert validate("model-servers-hardened", neither) == [
        "Deployment 'vllm-llama3-8b-instruct': container 'vllm' is not hardened: no RuntimeDefault or Localhost "
        f"seccompProfile. {SERVER_FIX}",
    ]  # the LoRA syncer sets its own


def test_a_model_server_with_a_token_is_named():
    automount = mutate(model_server(), "spec.template.spec.automountServiceAccountToken", True)
    projected = mutate(model_server(), "spec.template.spec.volumes.0", {
        "name": "kube-api-access", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}})
    tail = ("although it never calls the Kubernetes API; a compromised server could use it. Fix: "
            "automountServiceAccountToken: false and no serviceAccountToken volume.")
    assert validate("model-servers-hardened", automount) == [
        "Deployment 'vllm-llama3-8b-instruct': the model server pod mounts a service-account token "
        f"(automountServiceAccountToken is not false) {tail}"
    ]
    assert validate("model-servers-hardened", projected) == [
        "Deployment 'vllm-llama3-8b-instruct': the model server pod mounts a service-account token "
        f"(volume 'kube-api-access' projects a serviceAccountToken) {tail}"
    ]
    assert validate("model-servers-hardened", picker()) == []  # the picker's token is workloads-hardened's business


def test_run_as_user_0_is_rejected_in_production_and_advised_elsewhere():
    servers = copy.deepcopy(read_stack("prod")["inference-gateway:model_servers"])
    servers[0]["runtime_overrides"] = {"run_as_user": 0}
    root = render_with("prod", model_servers=servers).one(DEPLOYMENT, "vllm-llama3-8b-instruct")
    expected = ("Deployment 'vllm-llama3-8b-instruct': container 'vllm' is not hardened: may run as root "
                "(runAsNonRoot/runAsUser); allowPrivilegeEscalation is not false; readOnlyRootFilesystem is not true; "
                "capabilities.drop does not include ALL; no RuntimeDefault or Localhost seccompProfile. " + SERVER_FIX)
    assert validate("model-servers-hardened", root, environment="production") == [expected]
    assert validate("model-servers-hardened-advisory", root, environment="production") == []
    assert validate("model-servers-hardened", root, environment="development") == []
    assert validate("model-servers-hardened-advisory", root, environment="development") == [expected]
    assert validate("model-servers-hardened", root, environment="staging", environments=["production", "staging"]) == [expected]


def test_picker_hardening_gap_is_named():
    broken = mutate(picker(), f"{CONTAINER}.securityContext.readOnlyRootFilesystem", None)
    assert validate("workloads-hardened", broken) == [
        "Deployment 'llama3-8b-epp': container 'epp' is not hardened: readOnlyRootFilesystem is not true. Fix: set "
        "securityContext allowPrivilegeEscalation: false, readOnlyRootFilesystem: true (writable paths on emptyDirs), "
        "capabilities.drop: [ALL] and seccompProfile.type: RuntimeDefault."
    ]
    assert validate("workloads-hardened", model_server()) == []


def _without_policy(stack: str, name: str):
    synthesis = rendered(stack)
    return replace(synthesis, drop=[r for r in synthesis.of_type(NETWORK_POLICY) if r.inputs["metadata"]["name"] == name])


def test_a_model_server_without_its_network_policy_is_named():
    resources = _without_policy("prod", "vllm-llama3-8b-instruct-model-server")
    found = validate_stack("network-policies-present", resources)
    assert [m for m, _ in found] == [
        "Deployment 'vllm-llama3-8b-instruct' (namespace 'igw-prod'): no NetworkPolicy restricts its pods' ingress and "
        "egress traffic, so any pod in the cluster can reach it (vLLM's admin API, the picker) or it can reach "
        "anything. Fix: the program renders one per model server and picker (components/network_policies.py); a "
        "workload added outside it needs its own."
    ]
    assert found[0][1] == model_server().urn
    assert validate_stack("network-policies-present-advisory", resources) == []  # production: the mandatory one


def test_network_policy_coverage_needs_both_directions_and_matching_labels():
    synthesis = rendered("dev")
    np = next(r for r in synthesis.of_type(NETWORK_POLICY) if r.inputs["metadata"]["name"].endswith("-model-server"))
    ingress_only = mutate(mutate(np, "spec.policyTypes", None), "spec.egress", None)  # defaults to Ingress only
    by_expression = mutate(np, "spec.podSelector", {"matchExpressions": [{"key": "app", "operator": "Exists"}]})
    other_namespace = mutate(np, "metadata.namespace", "elsewhere")
    for broken, missing in ((ingress_only, "egress"), (by_expression, "ingress and egress"), (other_namespace, "ingress and egress")):
        found = validate_stack("network-policies-present-advisory", replace(synthesis, broken), environment="development")
        assert [m.split(":")[1].split(" traffic")[0] for m, _ in found] == [f" no NetworkPolicy restricts its pods' {missing}"]


def test_objects_in_default_or_without_a_namespace_are_named():
    cm = rendered("prod").one("kubernetes:core/v1:ConfigMap", "llama3-8b-epp-config")
    assert validate("namespace-not-default", mutate(cm, "metadata.namespace", "default")) == [
        "ConfigMap 'llama3-8b-epp': namespace 'default' is shared with the cluster's own workloads, so NetworkPolicies "
        f"and Pod Security labels cannot be the stack's own. {NAMESPACE_FIX}"
    ]
    assert validate("namespace-not-default", mutate(cm, "metadata.namespace", "kube-system"))[0].startswith(
        "ConfigMap 'llama3-8b-epp': namespace 'kube-system' is shared")
    assert validate("namespace-not-default", mutate(cm, "metadata.namespace", None)) == [
        "ConfigMap 'llama3-8b-epp': no metadata.namespace, so it lands in the provider's default namespace (usually "
        f"'default'). {NAMESPACE_FIX}"
    ]
    cluster_role = rendered("prod").of_type("kubernetes:rbac.authorization.k8s.io/v1:ClusterRole")[0]
    assert validate("namespace-not-default", cluster_role) == []


def test_a_dev_stack_in_default_is_advised_against():
    synthesis = render_with("dev", namespace="default", create_namespace=False)
    report = check_stack("dev", resources_of(synthesis))
    advisory = [v for v in report.violations if v.policy == "namespace-not-default-advisory"]
    assert report.mandatory == [] and advisory and all("namespace 'default' is shared" in v.message for v in advisory)


def test_namespace_pod_security_level():
    ns = rendered("prod").one(NAMESPACE)
    assert ns.inputs["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert validate("namespace-pod-security", mutate(ns, "metadata.labels", {})) == [
        "Namespace 'igw-prod': Pod Security level pod-security.kubernetes.io/enforce is unset, so the API server admits "
        "pods the stack's hardening would refuse. Fix: label it restricted or baseline (the program's namespace does: "
        "restricted when every workload meets it)."
    ]
    privileged = mutate(ns, "metadata.labels", {"pod-security.kubernetes.io/enforce": "privileged"})
    assert "pod-security.kubernetes.io/enforce is 'privileged'" in validate("namespace-pod-security", privileged)[0]
    baseline = mutate(ns, "metadata.labels", {"pod-security.kubernetes.io/enforce": "baseline"})
    assert validate("namespace-pod-security", baseline) == [
        "Namespace 'igw-prod': Pod Security level is 'baseline' without saying why in the annotation "
        "inference-gateway.dev/pod-security-reason. Fix: name each workload that cannot meet restricted and the reason "
        "(the program writes it when runtime_overrides.run_as_user is 0)."
    ]
    explained = mutate(baseline, "metadata.annotations", {"inference-gateway.dev/pod-security-reason": "x: y"})
    assert validate("namespace-pod-security", explained) == []
