"""Gateways and HTTPRoutes of rendered stacks (mock engine): shapes, CRD schemas and CEL rules."""

from __future__ import annotations

import copy
import functools

import pytest
import yaml

from igw.stackfile import read_stack
from tests.conftest import STACKS, k8s_object, k8s_objects, render_with, rendered
from tests.crd_schema import UPSTREAM_DIR, upstream_crd, validate_with_upstream

from components.builders.routes import CONTROL_HEADERS

POOL = {"group": "inference.networking.k8s.io", "kind": "InferencePool"}
STRIP = {"type": "RequestHeaderModifier", "requestHeaderModifier": {"remove": list(CONTROL_HEADERS)}}
INVOKE_REWRITE = {"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}}}
OPENAI_PATHS = ["/v1/completions", "/v1/chat/completions", "/v1/embeddings", "/v1/responses", "/v1/models"]
CHECKED_KINDS = {
    "Gateway", "HTTPRoute", "GCPGatewayPolicy", "HealthCheckPolicy", "GCPBackendPolicy", "GCPTrafficExtension", "PodMonitoring",
}


def force(model: str) -> dict:
    return {"type": "RequestHeaderModifier", "requestHeaderModifier": {
        "set": [{"name": "x-llm-d-model-name-rewrite", "value": model}],
        "remove": [*CONTROL_HEADERS[1:], "x-deployed-model-id"]}}


def resource_of(synthesis, kind: str, name: str):
    """The recorded resource (for its URN in failure messages)."""
    return next(r for r in synthesis.resources if r.inputs.get("kind") == kind and r.inputs.get("metadata", {}).get("name") == name)


# -- the "done" check: prod ------------------------------------------------------------------------------
def test_prod_renders_two_gateways_with_routes_policies_model_armor_and_dashboard(prod):
    assert sorted(o["metadata"]["name"] for o in k8s_objects(prod, "Gateway")) == ["external", "internal"]
    assert sorted(o["metadata"]["name"] for o in k8s_objects(prod, "HTTPRoute")) == [
        "external-chat", "external-invoke", "internal-all-models", "internal-large",
    ]
    assert sorted(o["metadata"]["name"] for o in k8s_objects(prod, "HealthCheckPolicy")) == ["llama3-70b", "llama3-8b"]
    assert sorted(o["metadata"]["name"] for o in k8s_objects(prod, "GCPBackendPolicy")) == ["llama3-70b", "llama3-8b"]
    assert [o["metadata"]["name"] for o in k8s_objects(prod, "GCPTrafficExtension")] == ["external-model-armor"]
    assert [o["metadata"]["name"] for o in k8s_objects(prod, "GCPGatewayPolicy")] == ["internal-policy"]
    assert len(prod.of_type("gcp:monitoring/dashboard:Dashboard")) == 1


# -- upstream CRDs: schema + CEL on every rendered object ----------------------------------------------------
@pytest.mark.parametrize("stack", STACKS)
def test_every_gateway_api_and_gke_object_passes_its_upstream_crd(stack):
    synthesis = rendered(stack)
    checked = 0
    for obj in synthesis.kubernetes_objects():
        if obj["kind"] in CHECKED_KINDS:
            r = resource_of(synthesis, obj["kind"], obj["metadata"]["name"])
            assert validate_with_upstream(obj) == [], r.urn
            checked += 1
    assert checked >= 5


@functools.lru_cache(maxsize=None)
def _prefix_rewrite_rule():
    """The HTTPRoute CRD's own CEL rule: ReplacePrefixMatch needs exactly one PathPrefix match."""
    import celpy

    crd = upstream_crd("gateway.networking.k8s.io/v1", "HTTPRoute")
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    rules = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["rules"]["items"]["x-kubernetes-validations"]
    found = [r for r in rules if "urlRewrite.path.type == 'ReplacePrefixMatch'" in r["rule"] and "backendRefs.exists_one" not in r["rule"]]
    assert len(found) == 1, f"the ReplacePrefixMatch rule was not found in {UPSTREAM_DIR}"
    env = celpy.Environment()
    return found[0], env.program(env.compile(found[0]["rule"]))


def _cel_ok(rule: dict) -> bool:
    import celpy

    _, program = _prefix_rewrite_rule()
    return bool(program.evaluate({"self": celpy.json_to_cel(rule)}))


@pytest.mark.parametrize("stack", STACKS)
def test_prefix_rewrite_cel_rule_holds_on_every_rendered_route(stack):
    synthesis = rendered(stack)
    for route in k8s_objects(synthesis, "HTTPRoute"):
        urn = resource_of(synthesis, "HTTPRoute", route["metadata"]["name"]).urn
        for i, rule in enumerate(route["spec"]["rules"]):
            assert _cel_ok(rule), f"{urn} rules[{i}]: {_prefix_rewrite_rule()[0]['message']}"


def test_the_cel_check_rejects_two_prefix_matches_with_a_prefix_rewrite():
    bad = {
        "matches": [{"path": {"type": "PathPrefix", "value": "/invoke/"}}, {"path": {"type": "PathPrefix", "value": "/v1/"}}],
        "filters": [INVOKE_REWRITE],
        "backendRefs": [{**POOL, "name": "p"}],
    }
    assert not _cel_ok(bad)
    assert _cel_ok({**bad, "matches": bad["matches"][:1]})


# -- route shapes as rendered --------------------------------------------------------------------------------
def test_predict_route_rendered(prod):
    route = k8s_object(prod, "HTTPRoute", "external-chat")
    assert route["spec"]["parentRefs"] == [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "external"}]
    assert {m["path"]["value"] for r in route["spec"]["rules"] for m in r["matches"]} == {"/v1/chat/completions"}
    assert route["spec"]["rules"][-1] == {
        "matches": [{"path": {"type": "Exact", "value": "/v1/chat/completions"}}],
        "filters": [STRIP],
        "backendRefs": [{**POOL, "name": "llama3-8b"}],
    }


def test_invoke_route_rendered(prod):
    """Only the client API under /invoke/, each rewritten to its own path; the deployed-model header
    (seed 000) is left to the picker, so no per-model rule exists."""
    route = k8s_object(prod, "HTTPRoute", "external-invoke")
    assert route["spec"]["rules"] == [
        {
            "matches": [{"path": {"type": "Exact", "value": f"/invoke{p}"}}],
            "filters": [{"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplaceFullPath", "replaceFullPath": p}}}, STRIP],
            "backendRefs": [{**POOL, "name": "llama3-8b"}],
        }
        for p in OPENAI_PATHS
    ]


def test_served_model_bypass_rendered(prod):
    route = k8s_object(prod, "HTTPRoute", "internal-all-models")
    by_path = {r["matches"][0]["path"]["value"]: r for r in route["spec"]["rules"]}
    assert by_path["/served-models/challenger/invocations"] == {
        "matches": [{"path": {"type": "Exact", "value": "/served-models/challenger/invocations"}}],
        "filters": [
            {"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplaceFullPath", "replaceFullPath": "/v1/chat/completions"}}},
            force("food-review-v2"),
        ],
        "backendRefs": [{**POOL, "name": "llama3-8b"}],
    }
    assert set(by_path) == {
        "/served-models/meta-llama-llama-3-1-8b-instruct/invocations",
        "/served-models/current/invocations",
        "/served-models/challenger/invocations",
        "/served-models/cad-fabricator/invocations",
        "/v1/completions",
    }
    assert route["spec"]["rules"][-1]["matches"] == [{"path": {"type": "Exact", "value": p}} for p in OPENAI_PATHS]


def test_header_matched_route_rendered(prod):
    route = k8s_object(prod, "HTTPRoute", "internal-large")
    assert route["spec"]["rules"][-1] == {
        "matches": [
            {"path": {"type": "Exact", "value": p}, "headers": [{"type": "Exact", "name": "x-model-family", "value": "llama3-70b"}]}
            for p in OPENAI_PATHS
        ],
        "filters": [STRIP],
        "backendRefs": [{**POOL, "name": "llama3-70b", "weight": 100}],
    }


@pytest.fixture(scope="module")
def blue_green():
    gateways = copy.deepcopy(read_stack("prod")["inference-gateway:gateways"])
    gateways[1]["routes"][1] = {
        "name": "large",
        "backends": [{"pool": "llama3-8b", "weight": 90}, {"pool": "llama3-70b", "weight": 10}],
        "hostnames": ["llm.internal.example.com"],
        "served_model_routes": False,
        "matches": [{"headers": [{"name": "x-model-family", "value": "llama3"}], "method": "POST"}],
    }
    gateways[1]["create_address"] = True
    return render_with("prod", gateways=gateways)


def test_weighted_backends_rendered(blue_green):
    route = k8s_object(blue_green, "HTTPRoute", "internal-large")
    assert route["spec"] == {
        "parentRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "internal"}],
        "hostnames": ["llm.internal.example.com"],
        "rules": [
            {
                "matches": [
                    {
                        "path": {"type": "Exact", "value": p},
                        "headers": [{"type": "Exact", "name": "x-model-family", "value": "llama3"}],
                        "method": "POST",
                    }
                    for p in OPENAI_PATHS
                ],
                "filters": [{"type": "RequestHeaderModifier",
                             "requestHeaderModifier": {"remove": [*CONTROL_HEADERS, "x-deployed-model-id"]}}],
                "backendRefs": [{**POOL, "name": "llama3-8b", "weight": 90}, {**POOL, "name": "llama3-70b", "weight": 10}],
            }
        ],
    }
    assert validate_with_upstream(route) == []


# -- gateways and addresses --------------------------------------------------------------------------------------
def test_external_gateway_rendered(prod):
    gw = k8s_object(prod, "Gateway", "external")
    assert gw["spec"]["gatewayClassName"] == "gke-l7-regional-external-managed"
    assert gw["spec"]["addresses"] == [{"type": "NamedAddress", "value": "igw-prod-external-ip"}]
    assert gw["spec"]["listeners"][1] == {
        "name": "https",
        "port": 443,
        "protocol": "HTTPS",
        "hostname": "llm.example.com",
        "tls": {"mode": "Terminate", "options": {"networking.gke.io/cert-manager-certs": "llm-example-com"}},
        "allowedRoutes": {"namespaces": {"from": "Same"}},
    }
    address = prod.one("gcp:compute/address:Address")
    assert address.inputs["name"] == "igw-prod-external-ip"
    assert address.inputs["addressType"] == "EXTERNAL" and address.inputs["region"] == "us-central1"
    gw_resource = resource_of(prod, "Gateway", "external")
    assert address.urn in gw_resource.dependencies, gw_resource.urn


def test_internal_gateway_global_access_and_shared_vip(blue_green):
    policy = k8s_object(blue_green, "GCPGatewayPolicy", "internal-policy")
    assert policy["spec"]["default"] == {"allowGlobalAccess": True}
    address = next(a for a in blue_green.of_type("gcp:compute/address:Address") if a.inputs["name"] == "igw-prod-internal-ip")
    assert address.inputs["addressType"] == "INTERNAL"
    assert address.inputs["purpose"] == "SHARED_LOADBALANCER_VIP"
    assert address.inputs["subnetwork"].endswith("/regions/us-central1/subnetworks/igw-prod-nodes-us-central1"), address.urn
    subnet = next(r for r in blue_green.of_type("gcp:compute/subnetwork:Subnetwork") if r.inputs["name"] == "igw-prod-nodes-us-central1")
    assert subnet.urn in address.dependencies, address.urn


def test_gateways_without_reserved_address_have_none(dev):
    gw = k8s_object(dev, "Gateway", "inference-gateway")
    assert "addresses" not in gw["spec"]
    assert dev.of_type("gcp:compute/address:Address") == []


def test_routes_wait_for_pools_and_the_gateway(prod):
    route = resource_of(prod, "HTTPRoute", "external-chat")
    gateway = resource_of(prod, "Gateway", "external")
    assert gateway.urn in route.dependencies, route.urn


def test_manifests_are_yaml_round_trippable(prod):
    for obj in k8s_objects(prod, "HTTPRoute") + k8s_objects(prod, "Gateway"):
        assert yaml.safe_load(yaml.safe_dump(obj)) == obj


def test_bad_gateway_config_fails_before_any_resource():
    import pulumi

    from igw.engine import run_program

    config = dict(read_stack("dev"))
    gateways = copy.deepcopy(config["inference-gateway:gateways"])
    gateways[0]["class"] = "gke-l7-gxlb"
    gateways[0]["routes"][0]["invoke_route_prefix"] = "/v1/*"
    config["inference-gateway:gateways"] = gateways
    with pytest.raises(pulumi.RunError) as err:
        run_program("dev-bad-gateway", config)
    assert str(err.value).splitlines()[1:] == [
        "gateways[0].class: 'gke-l7-gxlb' is not supported; use gke-l7-regional-external-managed or gke-l7-rilb",
        "gateways[0].routes[0].invoke_route_prefix: '/v1/*' is not supported; '/*' is the only allowed invoke_route_prefix",
    ]
