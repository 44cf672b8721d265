"""HTTPRoute builders: the exact object for each route shape (no Pulumi), exposing only the client
API paths they are given and stripping control headers on every rule."""

from __future__ import annotations

import pytest

from components.builders.routes import (
    CONTROL_HEADERS,
    DEPLOYED_MODEL_HEADER,
    MODEL_REWRITE_HEADER,
    httproute_manifest,
    route_rules,
)
from components.catalog.runtime_preset import Route
from components.catalog.runtimes import PRESETS
from components.config import GatewayConfig, ServedModelConfig
from components.config.served_models import served_name, served_target_conflicts, served_targets

POOL = {"group": "inference.networking.k8s.io", "kind": "InferencePool"}
OPENAI = list(PRESETS["vllm"].routes)
OPENAI_PATHS = ["/v1/completions", "/v1/chat/completions", "/v1/embeddings", "/v1/responses", "/v1/models"]
STRIP = {"type": "RequestHeaderModifier", "requestHeaderModifier": {"remove": list(CONTROL_HEADERS)}}
STRIP_ALL = {"type": "RequestHeaderModifier", "requestHeaderModifier": {"remove": [*CONTROL_HEADERS, DEPLOYED_MODEL_HEADER]}}


def force(model: str) -> dict:
    return {
        "type": "RequestHeaderModifier",
        "requestHeaderModifier": {
            "set": [{"name": MODEL_REWRITE_HEADER, "value": model}],
            "remove": [h for h in CONTROL_HEADERS if h != MODEL_REWRITE_HEADER] + [DEPLOYED_MODEL_HEADER],
        },
    }


def full_path(path: str) -> dict:
    return {"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplaceFullPath", "replaceFullPath": path}}}


def gateway(*routes: dict) -> GatewayConfig:
    return GatewayConfig.model_validate({"name": "gw", "routes": list(routes)})


def vllm_landing(route) -> dict[str, str]:
    """Where served-model paths land on vLLM pools (what config.runtime_rules.invocation_paths gives)."""
    return {p: route.invocations_path or PRESETS["vllm"].invocations_path for p in route.pools}


def render(route: dict, models: list[ServedModelConfig] = (), api=OPENAI) -> dict:
    g = gateway(route)
    return httproute_manifest(g, g.routes[0], models, "serving", api=api, invocations=vllm_landing(g.routes[0]))


def exact(*paths: str) -> list[dict]:
    return [{"path": {"type": "Exact", "value": p}} for p in paths]


SPLIT = ServedModelConfig.model_validate(
    {
        "name": "food-review",
        "pool": "p8b",
        "targets": [
            {"name": "current", "model": "food-review", "weight": 90},
            {"name": "challenger", "model": "food-review-v2", "weight": 10},
        ],
    }
)
BASE = ServedModelConfig.model_validate({"name": "meta-llama/Llama-3.1-8B-Instruct", "pool": "p8b"})


def test_prefix_route_matches_only_the_client_api():
    route = render({"name": "llm-route", "pool": "p8b", "served_model_routes": False})
    assert route == {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {
            "name": "gw-llm-route",
            "namespace": "serving",
            "labels": {"inference-gateway/gateway": "gw", "inference-gateway/route": "llm-route"},
        },
        "spec": {
            "parentRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw"}],
            "rules": [{"matches": exact(*OPENAI_PATHS), "filters": [STRIP_ALL], "backendRefs": [{**POOL, "name": "p8b"}]}],
        },
    }


def test_no_rule_reaches_an_internal_endpoint_on_any_shape():
    """Hostile: whatever the shape, no match lets /metrics, adapter load/unload or /sim/* through."""
    internal = [r.path for r in PRESETS["vllm"].internal] + ["/sim/control", "/sim/state", "/"]
    shapes = [
        {"name": "a", "pool": "p8b"},
        {"name": "b", "pool": "p8b", "predict_route": "/v1/chat/completions"},
        {"name": "c", "pool": "p8b", "invoke_route_prefix": "/*"},
        {"name": "d", "pool": "p8b", "path_prefix": "/v1/"},
    ]
    for shape in shapes:
        for rule in render(shape, [SPLIT, BASE])["spec"]["rules"]:
            for m in rule["matches"]:
                value = m["path"]["value"]
                target = value.removeprefix("/invoke") if value.startswith("/invoke/") else value
                assert m["path"]["type"] == "Exact" or value.startswith("/invoke/"), m
                for p in internal:
                    assert target != p and value != p, (shape["name"], m)


def test_path_prefix_narrows_the_client_api():
    route = render({"name": "v1", "pool": "p8b", "path_prefix": "/v1/chat", "served_model_routes": False})
    assert route["spec"]["rules"][0]["matches"] == exact("/v1/chat/completions")


def test_prefix_allow_list_paths_stay_prefixes_under_a_deeper_path_prefix():
    caikit = [Route("/api/v1/task/", "PathPrefix"), Route("/info/", "PathPrefix")]
    route = render({"name": "c", "pool": "p", "served_model_routes": False}, api=caikit)
    assert route["spec"]["rules"][0]["matches"] == [
        {"path": {"type": "PathPrefix", "value": "/api/v1/task/"}},
        {"path": {"type": "PathPrefix", "value": "/info/"}},
    ]
    deeper = render({"name": "c", "pool": "p", "path_prefix": "/api/v1/task/text-generation", "served_model_routes": False}, api=caikit)
    assert deeper["spec"]["rules"][0]["matches"] == [{"path": {"type": "PathPrefix", "value": "/api/v1/task/text-generation"}}]


def test_backend_refs_to_pools_have_no_port():
    route = render({"name": "r", "pool": "p8b"}, [SPLIT, BASE])
    for rule in route["spec"]["rules"]:
        for ref in rule["backendRefs"]:
            assert "port" not in ref
            assert ref["group"] == "inference.networking.k8s.io" and ref["kind"] == "InferencePool"


def test_predict_route_exposes_exactly_that_path():
    route = render({"name": "chat", "pool": "p8b", "predict_route": "/v1/chat/completions", "served_model_routes": False})
    assert route["spec"]["rules"] == [
        {"matches": exact("/v1/chat/completions"), "filters": [STRIP_ALL], "backendRefs": [{**POOL, "name": "p8b"}]}
    ]


def test_predict_route_leaves_the_deployed_model_header_to_the_picker():
    """One pool: x-deployed-model-id passes to the pool's picker, which resolves it (or 404s)."""
    route = render({"name": "chat", "pool": "p8b", "predict_route": "/v1/chat/completions"}, [SPLIT])
    assert route["spec"]["rules"] == [
        {"matches": exact("/v1/chat/completions"), "filters": [STRIP], "backendRefs": [{**POOL, "name": "p8b"}]}
    ]


def test_invoke_route_is_one_rewrite_per_client_api_path():
    route = render({"name": "invoke", "pool": "p8b", "invoke_route_prefix": "/*", "served_model_routes": False})
    assert route["spec"]["rules"] == [
        {"matches": exact(f"/invoke{p}"), "filters": [full_path(p), STRIP_ALL], "backendRefs": [{**POOL, "name": "p8b"}]}
        for p in OPENAI_PATHS
    ]


def test_invoke_route_prefix_paths_use_replace_prefix_match_one_match_per_rule():
    route = render(
        {"name": "invoke", "pool": "p", "invoke_route_prefix": "/*", "served_model_routes": False,
         "matches": [{"headers": [{"name": "x-team", "value": "a"}]}, {"headers": [{"name": "x-team", "value": "b"}]}]},
        api=[Route("/api/v1/task/", "PathPrefix")],
    )
    rewrite = {"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/api/v1/task"}}}
    assert route["spec"]["rules"] == [
        {
            "matches": [{"path": {"type": "PathPrefix", "value": "/invoke/api/v1/task"},
                         "headers": [{"type": "Exact", "name": "x-team", "value": team}]}],
            "filters": [rewrite, STRIP_ALL],
            "backendRefs": [{**POOL, "name": "p"}],
        }
        for team in "ab"
    ]


def test_invoke_route_never_routes_its_root_or_grpc_paths():
    api = [*OPENAI, Route("/fmaas.GenerationService/Generate", protocol="grpc")]
    route = render({"name": "invoke", "pool": "p8b", "invoke_route_prefix": "/*"}, [BASE], api=api)
    values = [m["path"]["value"] for r in route["spec"]["rules"] for m in r["matches"]]
    assert values == [f"/invoke{p}" for p in OPENAI_PATHS]


def test_served_model_bypass_seed_002():
    route = render({"name": "all", "pool": "p8b"}, [SPLIT])
    rules = route["spec"]["rules"]
    assert rules[:2] == [
        {
            "matches": exact(f"/served-models/{name}/invocations"),
            "filters": [full_path("/v1/chat/completions"), force(model)],
            "backendRefs": [{**POOL, "name": "p8b"}],
        }
        for name, model in (("current", "food-review"), ("challenger", "food-review-v2"))
    ]
    assert rules[2] == {"matches": exact(*OPENAI_PATHS), "filters": [STRIP], "backendRefs": [{**POOL, "name": "p8b"}]}


def test_control_headers_are_removed_on_every_rule_and_set_only_by_served_model_rules():
    for shape in ({"name": "a", "pool": "p8b"}, {"name": "b", "pool": "p8b", "invoke_route_prefix": "/*"},
                  {"name": "c", "backends": [{"pool": "p8b"}, {"pool": "p70b"}], "predict_route": "/v1/chat/completions"}):
        for rule in render(shape, [SPLIT, BASE])["spec"]["rules"]:
            (modifier,) = [f["requestHeaderModifier"] for f in rule["filters"] if f["type"] == "RequestHeaderModifier"]
            handled = set(modifier["remove"]) | {h["name"] for h in modifier.get("set", [])}
            assert set(CONTROL_HEADERS) <= handled, rule
            if modifier.get("set"):
                assert rule["matches"][0]["path"]["value"].startswith("/served-models/")


def test_control_headers_cover_what_the_picker_trusts():
    from endpoint_picker import protocol

    assert {protocol.MODEL_REWRITE_HEADER, protocol.DESTINATION_HEADER, protocol.SUBSET_KEY, protocol.SERVED_KEY,
            *protocol.OBJECTIVE_HEADERS} <= set(CONTROL_HEADERS)


def test_invocations_path_is_configurable():
    route = render({"name": "all", "pool": "p8b", "invocations_path": "/v1/completions"}, [BASE])
    assert route["spec"]["rules"][0]["filters"][0] == full_path("/v1/completions")


def test_weighted_backends_blue_green():
    route = render(
        {"name": "bg", "backends": [{"pool": "blue", "weight": 80}, {"pool": "green", "weight": 20}], "served_model_routes": False}
    )
    assert route["spec"]["rules"][0]["backendRefs"] == [
        {**POOL, "name": "blue", "weight": 80},
        {**POOL, "name": "green", "weight": 20},
    ]


def test_deployed_model_header_on_a_weighted_route_goes_to_the_models_own_pool():
    green = ServedModelConfig.model_validate({"name": "m-green", "pool": "green"})
    route = render({"name": "bg", "backends": [{"pool": "blue", "weight": 50}, {"pool": "green", "weight": 50}],
                    "predict_route": "/v1/chat/completions"}, [green])
    first, plain = route["spec"]["rules"]
    assert first == {
        "matches": [{"path": {"type": "Exact", "value": "/v1/chat/completions"},
                     "headers": [{"type": "Exact", "name": DEPLOYED_MODEL_HEADER, "value": "m-green"}]}],
        "filters": [STRIP],
        "backendRefs": [{**POOL, "name": "green"}],
    }
    assert [r["name"] for r in plain["backendRefs"]] == ["blue", "green"]


def test_header_matches_replace_the_plain_rule_and_hostnames():
    route = render(
        {
            "name": "large",
            "pool": "p70b",
            "hostnames": ["llm.example.com"],
            "served_model_routes": False,
            "matches": [{"headers": [{"name": "x-model-family", "value": "llama3-70b"}], "method": "POST"}, {"path_exact": "/v1/models"}],
        }
    )
    assert route["spec"]["hostnames"] == ["llm.example.com"]
    gated = [
        {"path": {"type": "Exact", "value": p}, "headers": [{"type": "Exact", "name": "x-model-family", "value": "llama3-70b"}], "method": "POST"}
        for p in OPENAI_PATHS
    ]
    assert route["spec"]["rules"] == [
        {"matches": [*gated, *exact("/v1/models")], "filters": [STRIP_ALL], "backendRefs": [{**POOL, "name": "p70b"}]}
    ]


def test_served_names_and_conflicts():
    assert served_name("meta-llama/Llama-3.1-8B-Instruct") == "meta-llama-llama-3-1-8b-instruct"
    targets = served_targets([SPLIT, BASE], ["p8b"])
    assert [(t.name, t.model, t.client_model) for t in targets] == [
        ("current", "food-review", "food-review"),
        ("challenger", "food-review-v2", "food-review"),
        ("meta-llama-llama-3-1-8b-instruct", "meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Llama-3.1-8B-Instruct"),
    ]
    other = ServedModelConfig.model_validate({"name": "x", "pool": "p8b", "targets": [{"name": "current", "model": "x", "weight": 100}]})
    assert [(a.model, b.model) for a, b in served_target_conflicts(served_targets([SPLIT, other], ["p8b"]))] == [("food-review", "x")]


def test_too_many_rules_is_an_error():
    models = [ServedModelConfig.model_validate({"name": f"m{i}", "pool": "p"}) for i in range(16)]
    with pytest.raises(ValueError, match="route 'r' of gateway 'gw' needs 17 HTTPRoute rules; at most 16 are allowed"):
        render({"name": "r", "pool": "p"}, models)


def test_a_route_with_nothing_to_expose_is_an_error():
    with pytest.raises(ValueError, match="matches no path"):
        render({"name": "r", "pool": "p", "served_model_routes": False}, api=[])


def test_rules_are_independent_objects():
    g = gateway({"name": "r", "pool": "p8b", "invoke_route_prefix": "/*"})
    rules = route_rules(g.routes[0], [], OPENAI, vllm_landing(g.routes[0]))
    rules[0]["filters"][1]["requestHeaderModifier"]["remove"].append("x")
    assert "x" not in rules[1]["filters"][1]["requestHeaderModifier"]["remove"]
