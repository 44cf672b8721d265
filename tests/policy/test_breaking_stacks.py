"""Break every committed stack the way each policy guards against, and check that `igw policy`
(the whole pack, offline) fails on exactly that policy and nothing else."""

from __future__ import annotations

import copy
from typing import Any, Callable

import pytest
import yaml

from igw.policy_checks import check_stack, format_report, resources_of
from tests.conftest import rendered

Resources = list[dict[str, Any]]


def edit(types: str | tuple[str, ...], change: Callable[[dict[str, Any]], bool | None]) -> Callable[[Resources], int]:
    """A break: apply `change` to the inputs of every resource of `types` (it returns False to skip
    one). Returns how many resources it changed."""
    types = (types,) if isinstance(types, str) else types

    def apply(resources: Resources) -> int:
        n = 0
        for r in resources:
            if r["type"] in types and change(r["inputs"]) is not False:
                n += 1
        return n

    return apply


def drop(kind: str, where: Callable[[dict[str, Any]], bool]) -> Callable[[Resources], int]:
    def apply(resources: Resources) -> int:
        before = len(resources)
        resources[:] = [r for r in resources if not (r["type"] == kind and where(r["inputs"]))]
        return before - len(resources)

    return apply


CLUSTER = "gcp:container/cluster:Cluster"
NODE_POOL = "gcp:container/nodePool:NodePool"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"


def h100(inputs: dict[str, Any]) -> list[dict[str, Any]]:
    return [a for a in inputs.get("nodeConfig", {}).get("guestAccelerators", []) if a["type"].startswith("nvidia-h100")]


def pod(inputs: dict[str, Any]) -> dict[str, Any]:
    return inputs["spec"]["template"]["spec"]


def gpu(inputs: dict[str, Any]) -> bool:
    return any("nvidia.com/gpu" in c.get("resources", {}).get("limits", {}) for c in pod(inputs)["containers"])


def set_driver(inputs):
    for a in h100(inputs) or [None]:
        if a is None:
            return False
        a["gpuDriverInstallationConfig"] = {"gpuDriverVersion": "INSTALLATION_DISABLED"}


def untaint(inputs):
    if not h100(inputs):
        return False
    inputs["nodeConfig"]["taints"] = []


def only_gpu(change):
    def apply(inputs):
        if not gpu(inputs):
            return False
        change(inputs)

    return apply


def only_picker(change):
    def apply(inputs):
        if gpu(inputs):
            return False
        change(inputs)

    return apply


HTTP_ROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"


def open_first_match(inputs):
    """The first rule's first match becomes `PathPrefix /`: every admin path goes through."""
    inputs["spec"]["rules"][0]["matches"][0]["path"] = {"type": "PathPrefix", "value": "/"}


def stop_stripping(inputs):
    """No rule removes the client's control headers any more."""
    for rule in inputs["spec"]["rules"]:
        rule["filters"] = [f for f in rule.get("filters", []) if f.get("type") != "RequestHeaderModifier"]


def user_from_header(inputs):
    """A pool whose per-user limit keys on a header the client sends."""
    raw = inputs.get("data", {}).get("picker.yaml")
    cfg = yaml.safe_load(raw) if isinstance(raw, str) else None
    if not isinstance(cfg, dict) or not any(r.get("key") == "user" for r in cfg.get("rate_limits") or []):
        return False
    cfg.setdefault("auth", {})["user_header"] = "x-user-id"
    inputs["data"]["picker.yaml"] = yaml.safe_dump(cfg)


BREAKS: dict[str, Callable[[Resources], int]] = {
    "gke-min-version": edit(CLUSTER, lambda i: i.update(minMasterVersion="1.30.5-gke.100")),
    "gke-vpc-native": edit(CLUSTER, lambda i: i.update(networkingMode="ROUTES")),
    "gke-gateway-api-enabled": edit(CLUSTER, lambda i: i.update(gatewayApiConfig={"channel": "CHANNEL_DISABLED"})),
    "gke-http-load-balancing-enabled": edit(CLUSTER, lambda i: i.update(addonsConfig={"httpLoadBalancing": {"disabled": True}})),
    "gpu-pool-drivers-installed": edit(NODE_POOL, set_driver),
    "gpu-pool-tainted": edit(NODE_POOL, untaint),
    "model-server-probes": edit(DEPLOYMENT, only_gpu(lambda i: pod(i)["containers"][0].pop("startupProbe"))),
    "model-server-graceful-drain": edit(DEPLOYMENT, only_gpu(lambda i: pod(i).update(terminationGracePeriodSeconds=30))),
    "workloads-run-as-non-root": edit(DEPLOYMENT, only_picker(lambda i: pod(i)["containers"][0]["securityContext"].update(runAsUser=0))),
    "workloads-request-resources": edit(DEPLOYMENT, only_picker(lambda i: pod(i)["containers"][0].update(resources={}))),
    "sidecars-request-resources": edit(DEPLOYMENT, only_gpu(lambda i: pod(i)["initContainers"][0].update(resources={}))),
    "no-plaintext-secrets": edit(DEPLOYMENT, only_picker(lambda i: pod(i)["containers"][0].setdefault("env", []).append({"name": "OPENAI_API_KEY", "value": "sk-live"}))),
    "gateway-supported-class": edit("kubernetes:gateway.networking.k8s.io/v1:Gateway", lambda i: i["spec"].update(gatewayClassName="gke-l7-global-external-managed")),
    "inference-pool-endpoint-picker": edit("kubernetes:inference.networking.k8s.io/v1:InferencePool", lambda i: i["spec"]["endpointPickerRef"].pop("failureMode")),
    "model-rewrite-weights-valid": edit("kubernetes:llm-d.ai/v1alpha2:InferenceModelRewrite", lambda i: i["spec"]["rules"][0]["targets"][0].update(weight=0)),
    "proxy-only-subnet-per-gateway-region": drop("gcp:compute/subnetwork:Subnetwork", lambda i: i.get("purpose") == "REGIONAL_MANAGED_PROXY"),
    "gke-deletion-protection": edit(CLUSTER, lambda i: i.update(deletionProtection=False)),
    "model-armor-on-external-gateways": drop("kubernetes:networking.gke.io/v1:GCPTrafficExtension", lambda i: True),
    "model-servers-hardened": edit(DEPLOYMENT, only_gpu(lambda i: pod(i)["containers"][0]["securityContext"].update(readOnlyRootFilesystem=False))),
    "workloads-hardened": edit(DEPLOYMENT, only_picker(lambda i: pod(i)["containers"][0]["securityContext"].update(allowPrivilegeEscalation=True))),
    "network-policies-present": drop("kubernetes:networking.k8s.io/v1:NetworkPolicy", lambda i: True),
    "namespace-not-default": edit("kubernetes:core/v1:ConfigMap", lambda i: i["metadata"].update(namespace="default")),
    "namespace-pod-security": edit("kubernetes:core/v1:Namespace", lambda i: i["metadata"].update(labels={})),
    "routes-no-admin-paths": edit(HTTP_ROUTE, open_first_match),
    "routes-strip-control-headers": edit(HTTP_ROUTE, stop_stripping),
    "rate-limits-trusted-identity": edit(CONFIG_MAP, user_from_header),
}
PRODUCTION_ONLY = {
    "gke-deletion-protection", "model-armor-on-external-gateways", "model-servers-hardened", "workloads-hardened",
    "network-policies-present", "namespace-not-default", "namespace-pod-security",
}


def cases():
    for stack in ("dev", "prod", "local"):
        for policy in BREAKS:
            if policy in PRODUCTION_ONLY and stack != "prod":
                continue
            yield pytest.param(stack, policy, id=f"{stack}-{policy}")


@pytest.mark.parametrize("stack,policy", list(cases()))
def test_each_break_fails_exactly_its_policy(stack, policy):
    resources = copy.deepcopy(resources_of(rendered(stack)))
    changed = BREAKS[policy](resources)
    if changed == 0:
        pytest.skip(f"{stack} renders nothing {policy} applies to")
    report = check_stack(stack, resources)
    assert {v.policy for v in report.mandatory} == {policy}, format_report(report)
    assert all(v.message for v in report.mandatory)


def test_every_mandatory_policy_has_a_break():
    from igw.policy_checks import policies_module

    mandatory = {p.name for p in policies_module().POLICIES if p.enforcement_level.value == "mandatory"}
    assert mandatory == set(BREAKS)
