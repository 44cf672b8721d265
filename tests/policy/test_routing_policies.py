"""Gateway, InferencePool and model rewrite policies, and the stack policies (proxy-only subnet per
gateway region, Model Armor on external gateways), on rendered stacks."""

from __future__ import annotations

import copy

import pytest

from igw.stackfile import read_stack
from tests.conftest import render_with, rendered
from tests.policy.conftest import mutate, replace, validate, validate_stack

GATEWAY = "kubernetes:gateway.networking.k8s.io/v1:Gateway"
POOL = "kubernetes:inference.networking.k8s.io/v1:InferencePool"
REWRITE = "kubernetes:llm-d.ai/v1alpha2:InferenceModelRewrite"
EXTENSION = "kubernetes:networking.gke.io/v1:GCPTrafficExtension"
SUBNETWORK = "gcp:compute/subnetwork:Subnetwork"
STACKS = ["dev", "prod", "local"]


def env_of(stack: str) -> str:
    return "production" if stack == "prod" else "development"


@pytest.mark.parametrize("stack", STACKS)
def test_rendered_gateways_pools_and_rewrites_pass(stack):
    s = rendered(stack)
    assert s.of_type(GATEWAY) and s.of_type(POOL)
    for r in s.of_type(GATEWAY):
        assert validate("gateway-supported-class", r) == [], r.name
    for r in s.of_type(POOL):
        assert validate("inference-pool-endpoint-picker", r) == [], r.name
    for r in s.of_type(REWRITE):
        assert validate("model-rewrite-weights-valid", r) == [], r.name


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("policy", ["proxy-only-subnet-per-gateway-region", "model-armor-on-external-gateways"])
def test_rendered_stacks_pass_stack_policies(stack, policy):
    assert validate_stack(policy, rendered(stack), environment=env_of(stack)) == []


def external_gateway():
    return rendered("prod").one(GATEWAY, "igw-prod-external")


def test_unsupported_gateway_class_is_rejected():
    global_lb = mutate(external_gateway(), "spec.gatewayClassName", "gke-l7-global-external-managed")
    assert validate("gateway-supported-class", global_lb) == [
        "Gateway 'external': gatewayClassName 'gke-l7-global-external-managed' is not supported by GKE Inference "
        "Gateway (InferencePool backends). Fix: use gke-l7-regional-external-managed or gke-l7-rilb "
        "(gateways[].class)."
    ]


def pool():
    return rendered("prod").one(POOL, "llama3-8b")


def test_pool_without_picker_is_rejected():
    assert validate("inference-pool-endpoint-picker", mutate(pool(), "spec.endpointPickerRef", None)) == [
        "InferencePool 'llama3-8b': spec.endpointPickerRef is missing, so no endpoint picker schedules its requests "
        "(GKE reports EndpointPickerRefMissing). Fix: set spec.endpointPickerRef {name: <picker Service>, port: "
        "{number: 9002}, failureMode: FailOpen|FailClose}."
    ]


def test_pool_without_explicit_failure_mode_is_rejected():
    assert validate("inference-pool-endpoint-picker", mutate(pool(), "spec.endpointPickerRef.failureMode", None)) == [
        "InferencePool 'llama3-8b': spec.endpointPickerRef.failureMode is unset (the CRD then defaults to "
        "FailClose); what happens when the picker is down must be a decision, not a default. Fix: set failureMode "
        "to FailOpen or FailClose (pools[].failure_mode)."
    ]
    assert len(validate("inference-pool-endpoint-picker", mutate(pool(), "spec.endpointPickerRef.failureMode", "Sometimes"))) == 1
    # A platform that wants fail-closed everywhere says so in policy config.
    assert len(validate("inference-pool-endpoint-picker", pool(), failureModes=["FailClose"])) == 1


def test_pool_picker_without_port_is_rejected():
    no_port = mutate(pool(), "spec.endpointPickerRef.port", None)
    assert validate("inference-pool-endpoint-picker", no_port) == [
        "InferencePool 'llama3-8b': spec.endpointPickerRef.port.number is unset; a Service reference needs the "
        "picker's ext_proc Service port. Fix: set spec.endpointPickerRef.port.number (9002)."
    ]


def rewrite():
    return rendered("prod").one(REWRITE)


@pytest.mark.parametrize("weight", [0, 1_000_001, 2.5, "90"])
def test_rewrite_weight_out_of_range_is_rejected(weight):
    bad = mutate(rewrite(), "spec.rules.0.targets.1.weight", weight)
    shown = repr(weight) if isinstance(weight, str) else str(weight)
    assert validate("model-rewrite-weights-valid", bad) == [
        f"InferenceModelRewrite {rewrite().inputs['metadata']['name']!r}: spec.rules[0].targets[1] (food-review-v2) "
        f"has weight {shown}; weights are integers from 1 to 1000000. Fix: use a weight in that range, or drop the "
        "target to send it no traffic."
    ]


def test_rewrite_rule_without_targets_is_rejected():
    name = rewrite().inputs["metadata"]["name"]
    assert validate("model-rewrite-weights-valid", mutate(rewrite(), "spec.rules.0.targets", [])) == [
        f"InferenceModelRewrite {name!r}: spec.rules[0] has no targets, so matching requests have nowhere to go. "
        "Fix: add targets [{modelRewrite: <model>, weight: <1..1000000>}]."
    ]
    partial = mutate(rewrite(), "spec.rules.0.targets.1.weight", None)
    assert validate("model-rewrite-weights-valid", partial) == [
        f"InferenceModelRewrite {name!r}: spec.rules[0] sets weights on 1 of 2 targets; set a weight on every "
        "target or on none."
    ]


def test_gateway_region_without_proxy_only_subnet_is_rejected():
    s = rendered("prod")
    proxy = [r for r in s.of_type(SUBNETWORK) if r.inputs.get("purpose") == "REGIONAL_MANAGED_PROXY"]
    assert len(proxy) == 1
    found = validate_stack("proxy-only-subnet-per-gateway-region", replace(s, drop=proxy))
    assert found == [(
        "Gateway(s) external, internal are regional Envoy load balancers in us-central1, which has no ACTIVE "
        "proxy-only subnet, so they never get an address. Fix: add a Subnetwork with purpose "
        "REGIONAL_MANAGED_PROXY, role ACTIVE in us-central1 (network.proxy_only_subnets, e.g. 10.129.0.0/23), or "
        "list an existing one in this policy's existingSubnetRegions.",
        s.one(GATEWAY, "igw-prod-external").urn,
    )]
    backup = mutate(proxy[0], "role", "BACKUP")
    assert len(validate_stack("proxy-only-subnet-per-gateway-region", replace(s, backup))) == 1
    adopted = validate_stack("proxy-only-subnet-per-gateway-region", replace(s, drop=proxy), existingSubnetRegions=["us-central1"])
    assert adopted == []


MODEL_ARMOR_MESSAGE = (
    "Gateway 'external' is external in a production stack but no GCPTrafficExtension calls Model Armor for it, so "
    "prompts and responses reach the models unscreened. Fix: configure model_armor (templates and guards) and "
    "include 'external' in model_armor.gateways (or leave that unset: every external gateway is guarded)."
)


def test_prod_without_model_armor_on_the_external_gateway_is_rejected():
    gateways = copy.deepcopy(read_stack("prod")["inference-gateway:gateways"])
    next(g for g in gateways if g["name"] == "external")["model_armor"] = False
    unsafe = render_with("prod", gateways=gateways)
    assert unsafe.of_type(EXTENSION) == []
    assert validate_stack("model-armor-on-external-gateways", unsafe) == [
        (MODEL_ARMOR_MESSAGE, unsafe.one(GATEWAY, "igw-prod-external").urn)
    ]


def test_model_armor_extension_must_target_the_gateway_and_call_model_armor():
    s = rendered("prod")
    ext = s.one(EXTENSION)
    elsewhere = mutate(ext, "spec.targetRefs.0.name", "internal")
    assert [m for m, _ in validate_stack("model-armor-on-external-gateways", replace(s, elsewhere))] == [MODEL_ARMOR_MESSAGE]
    other_service = mutate(ext, "spec.extensionChains.0.extensions.0.googleAPIServiceName", "example.googleapis.com")
    assert [m for m, _ in validate_stack("model-armor-on-external-gateways", replace(s, other_service))] == [MODEL_ARMOR_MESSAGE]


def test_model_armor_is_required_only_where_configured():
    dev = rendered("dev")
    assert dev.of_type(EXTENSION) == []  # dev has an external gateway and no Model Armor
    assert validate_stack("model-armor-on-external-gateways", dev, environment="development") == []
    everywhere = validate_stack("model-armor-on-external-gateways", dev, environment="development", environments=["*"])
    assert [m.split(" is external")[0] for m, _ in everywhere] == ["Gateway 'inference-gateway'"]
