"""Request-path policies (no admin routes, control headers stripped, trusted rate-limit identity)
on rendered stacks, the hostile variant next to each, and their default lists kept in step with
the program's runtime presets and route builder."""

from __future__ import annotations

import copy

import pytest
import yaml

from components.builders.routes import CONTROL_HEADERS
from components.catalog.runtimes import PRESETS
from tests.conftest import rendered
from policy.inference_gateway_policies.request_path import ADMIN_PATHS
from tests.policy.conftest import mutate, validate

ROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
STACKS = ["dev", "prod", "local"]


def picker_configmaps(stack: str):
    return [r for r in rendered(stack).of_type(CONFIG_MAP) if "picker.yaml" in (r.inputs.get("data") or {})]


@pytest.mark.parametrize("stack", STACKS)
def test_rendered_routes_and_picker_configs_pass(stack):
    routes = rendered(stack).of_type(ROUTE)
    assert routes
    for r in routes:
        assert validate("routes-no-admin-paths", r) == [], r.name
        assert validate("routes-strip-control-headers", r) == [], r.name
    assert picker_configmaps(stack)
    for cm in picker_configmaps(stack):
        assert validate("rate-limits-trusted-identity", cm) == [], cm.name


def invoke_route():
    return next(r for r in rendered("prod").of_type(ROUTE) if r.inputs["metadata"]["name"] == "external-invoke")


def test_seed_000_style_invoke_prefix_to_root_is_refused():
    """The pre-allow-list invoke rule: /invoke/ -> / exposes every path of the server."""
    r = mutate(invoke_route(), "spec.rules", [{
        "matches": [{"path": {"type": "PathPrefix", "value": "/invoke/"}}],
        "filters": [{"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}}},
                    {"type": "RequestHeaderModifier", "requestHeaderModifier": {"remove": list(CONTROL_HEADERS)}}],
        "backendRefs": [{"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": "llama3-8b"}],
    }])
    assert validate("routes-no-admin-paths", r) == [
        "HTTPRoute 'external-invoke': spec.rules[0].matches[0] (PathPrefix '/invoke/') lets admin or internal endpoints "
        f"through (/metrics, /health, /ping, /load, /version and {len(ADMIN_PATHS) - 5} more). Fix: match only the model "
        "servers' client API paths (the runtime presets' routes; widen with routes[].expose, never to an internal endpoint)."
    ]


@pytest.mark.parametrize("match, hit", [
    ({"type": "Exact", "value": "/v1/unload_lora_adapter"}, "/v1/unload_lora_adapter"),
    ({"type": "PathPrefix", "value": "/sim"}, "/sim/control, /sim/state"),
    ({"type": "PathPrefix", "value": "/v2/repository"}, "/v2/repository/index, /v2/repository/models/x/load, /v2/repository/models/x/unload"),
])
def test_a_match_reaching_an_admin_endpoint_is_refused(match, hit):
    r = mutate(invoke_route(), "spec.rules.0.matches", [{"path": match}])
    r = mutate(r, "spec.rules.0.filters", [{"type": "RequestHeaderModifier", "requestHeaderModifier": {"remove": list(CONTROL_HEADERS)}}])
    (message,) = validate("routes-no-admin-paths", r)
    assert f"lets admin or internal endpoints through ({hit})" in message


def test_a_rewrite_onto_an_admin_endpoint_is_refused():
    r = mutate(invoke_route(), "spec.rules.0.filters.0.urlRewrite.path.replaceFullPath", "/v1/load_lora_adapter")
    assert "(/v1/load_lora_adapter)" in validate("routes-no-admin-paths", r)[0]


def test_a_rule_that_keeps_client_control_headers_is_refused():
    r = mutate(invoke_route(), "spec.rules.0.filters.1.requestHeaderModifier.remove", ["x-llm-d-model-name-rewrite"])
    assert validate("routes-strip-control-headers", r) == [
        "HTTPRoute 'external-invoke': spec.rules[0] passes client-sent control headers to the picker "
        "(x-gateway-inference-objective, x-llm-d-inference-objective, x-gateway-destination-endpoint, "
        "x-gateway-destination-endpoint-subset, x-gateway-destination-endpoint-served, x-llm-d-inference-fairness-id, "
        "x-llm-d-slo-ttft-ms, x-llm-d-slo-tpot-ms), so a client can choose its own priority, model or endpoint. "
        "Fix: add a RequestHeaderModifier that removes them (or sets the ones this rule decides)."
    ]
    bare = mutate(invoke_route(), "spec.rules.0.filters", [invoke_route().inputs["spec"]["rules"][0]["filters"][0]])
    assert len(validate("routes-strip-control-headers", bare)) == 1


def with_picker_config(change) -> object:
    cm = next(c for c in picker_configmaps("local"))
    cfg = yaml.safe_load(cm.inputs["data"]["picker.yaml"])
    change(cfg)
    return mutate(cm, "data", {"picker.yaml": yaml.safe_dump(cfg)})


def test_rate_limits_on_a_client_header_are_refused():
    cm = with_picker_config(lambda c: c["auth"].update(user_header="x-user-id"))
    assert validate("rate-limits-trusted-identity", cm) == [
        "ConfigMap 'vllm-llama3-8b-instruct-epp': per-user rate limits key on the request header 'x-user-id' "
        "(auth.user_header), which any client can set to get a fresh limit. Fix: key users on API keys "
        "(pools[].picker.api_keys) or the client address; drop auth.user_header."
    ]


@pytest.mark.parametrize("hop, side", [(3, "the client-controlled part of X-Forwarded-For"), (1, "the load balancer's own address")])
def test_rate_limits_on_the_wrong_forwarded_for_entry_are_refused(hop, side):
    cm = with_picker_config(lambda c: c["auth"].update(client_address_hop=hop))
    assert validate("rate-limits-trusted-identity", cm) == [
        f"ConfigMap 'vllm-llama3-8b-instruct-epp': per-user rate limits key on X-Forwarded-For entry {hop} from the "
        f"right, {side}; the gateway appends 2 entries (<client-ip>,<load-balancer-ip>). Fix: auth.client_address_hop: 2."
    ]


def test_no_per_user_limits_means_nothing_to_check():
    cm = with_picker_config(lambda c: (c.update(rate_limits=[]), c["auth"].update(user_header="x-user-id")))
    assert validate("rate-limits-trusted-identity", cm) == []


def test_default_lists_cover_the_program():
    """The pack's own lists (it ships without the checkout) cover every runtime's internal
    endpoints and every header the route builder strips."""
    from policy.inference_gateway_policies.request_path import CONTROL_HEADERS as PACK_HEADERS

    assert set(CONTROL_HEADERS) == set(PACK_HEADERS)
    for preset in PRESETS.values():
        for internal in preset.internal:
            assert any(internal.covers(p) for p in ADMIN_PATHS), (preset.name, internal)
