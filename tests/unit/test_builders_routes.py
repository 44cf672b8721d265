"""HTTPRoute builders: the exact object for each route shape (no Pulumi)."""

from __future__ import annotations

import pytest

from components.builders.routes import (
    DEPLOYED_MODEL_HEADER,
    MODEL_REWRITE_HEADER,
    httproute_manifest,
)
from components.config import GatewayConfig, RouteConfig, ServedModelConfig
from components.config.served_models import served_name, served_target_conflicts, served_targets

POOL = {"group": "inference.networking.k8s.io", "kind": "InferencePool"}
STRIP = {"type": "RequestHeaderModifier", "requestHeaderModifier": {"remove": [MODEL_REWRITE_HEADER]}}
INVOKE_REWRITE = {"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}}}


def force(model: str) -> dict:
    return {"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": MODEL_REWRITE_HEADER, "value": model}]}}


def gateway(*routes: dict) -> GatewayConfig:
    return GatewayConfig.model_validate({"name": "gw", "routes": list(routes)})


def render(route: dict, models: list[ServedModelConfig] = ()) -> dict:
    g = gateway(route)
    return httproute_manifest(g, g.routes[0], models, "serving")


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


def test_prefix_route_is_seed_001_shape():
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
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    "filters": [STRIP],
                    "backendRefs": [{**POOL, "name": "p8b"}],
                }
            ],
        },
    }


def test_backend_refs_to_pools_have_no_port():
    route = render({"name": "r", "pool": "p8b"}, [SPLIT, BASE])
    for rule in route["spec"]["rules"]:
        for ref in rule["backendRefs"]:
            assert "port" not in ref
            assert ref["group"] == "inference.networking.k8s.io" and ref["kind"] == "InferencePool"


def test_predict_route_exposes_exactly_that_path():
    route = render({"name": "chat", "pool": "p8b", "predict_route": "/v1/chat/completions", "served_model_routes": False})
    assert route["spec"]["rules"] == [
        {
            "matches": [{"path": {"type": "Exact", "value": "/v1/chat/completions"}}],
            "filters": [STRIP],
            "backendRefs": [{**POOL, "name": "p8b"}],
        }
    ]


def test_predict_route_targets_a_served_model_by_header_without_new_paths():
    route = render({"name": "chat", "pool": "p8b", "predict_route": "/v1/chat/completions"}, [SPLIT])
    rules = route["spec"]["rules"]
    paths = {m["path"]["value"] for r in rules for m in r["matches"]}
    assert paths == {"/v1/chat/completions"}
    assert rules[0] == {
        "matches": [
            {
                "path": {"type": "Exact", "value": "/v1/chat/completions"},
                "headers": [{"type": "Exact", "name": DEPLOYED_MODEL_HEADER, "value": "current"}],
            }
        ],
        "filters": [force("food-review")],
        "backendRefs": [{**POOL, "name": "p8b"}],
    }
    assert rules[1]["filters"] == [force("food-review-v2")]
    assert rules[2]["filters"] == [STRIP]


def test_invoke_route_rewrites_invoke_prefix_to_root():
    route = render({"name": "invoke", "pool": "p8b", "invoke_route_prefix": "/*", "served_model_routes": False})
    assert route["spec"]["rules"] == [
        {
            # the root is not exposed: /invoke and /invoke/ reach the server unrewritten (404)
            "matches": [{"path": {"type": "Exact", "value": "/invoke"}}, {"path": {"type": "Exact", "value": "/invoke/"}}],
            "filters": [STRIP],
            "backendRefs": [{**POOL, "name": "p8b"}],
        },
        {
            "matches": [{"path": {"type": "PathPrefix", "value": "/invoke/"}}],
            "filters": [INVOKE_REWRITE, STRIP],
            "backendRefs": [{**POOL, "name": "p8b"}],
        },
    ]


def test_invoke_route_deployed_model_rules_keep_the_rewrite():
    route = render({"name": "invoke", "pool": "p8b", "invoke_route_prefix": "/*"}, [BASE])
    first = route["spec"]["rules"][0]
    assert first == {
        "matches": [
            {
                "path": {"type": "PathPrefix", "value": "/invoke/"},
                "headers": [{"type": "Exact", "name": DEPLOYED_MODEL_HEADER, "value": "meta-llama-llama-3-1-8b-instruct"}],
            }
        ],
        "filters": [INVOKE_REWRITE, force("meta-llama/Llama-3.1-8B-Instruct")],
        "backendRefs": [{**POOL, "name": "p8b"}],
    }


def test_invoke_route_with_header_matches_splits_into_one_pathprefix_per_rule():
    route = render(
        {
            "name": "invoke",
            "pool": "p8b",
            "invoke_route_prefix": "/*",
            "served_model_routes": False,
            "matches": [{"headers": [{"name": "x-team", "value": "a"}]}, {"headers": [{"name": "x-team", "value": "b"}]}],
        }
    )
    guard, *rules = route["spec"]["rules"]
    assert [m["path"]["value"] for m in guard["matches"]] == ["/invoke", "/invoke/", "/invoke", "/invoke/"]
    assert [m["headers"][0]["value"] for m in guard["matches"]] == ["a", "a", "b", "b"]
    assert len(rules) == 2
    for rule, team in zip(rules, "ab"):
        assert rule["matches"] == [
            {"path": {"type": "PathPrefix", "value": "/invoke/"}, "headers": [{"type": "Exact", "name": "x-team", "value": team}]}
        ]
        assert rule["filters"][0] == INVOKE_REWRITE


def test_served_model_bypass_seed_002():
    route = render({"name": "all", "pool": "p8b"}, [SPLIT])
    rules = route["spec"]["rules"]
    assert rules[:2] == [
        {
            "matches": [{"path": {"type": "Exact", "value": f"/served-models/{name}/invocations"}}],
            "filters": [
                {"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplaceFullPath", "replaceFullPath": "/v1/chat/completions"}}},
                force(model),
            ],
            "backendRefs": [{**POOL, "name": "p8b"}],
        }
        for name, model in (("current", "food-review"), ("challenger", "food-review-v2"))
    ]
    assert rules[2]["matches"] == [{"path": {"type": "PathPrefix", "value": "/"}}]


def test_invocations_path_is_configurable():
    route = render({"name": "all", "pool": "p8b", "invocations_path": "/v1/completions"}, [BASE])
    rewrite = route["spec"]["rules"][0]["filters"][0]
    assert rewrite["urlRewrite"]["path"] == {"type": "ReplaceFullPath", "replaceFullPath": "/v1/completions"}


def test_weighted_backends_blue_green():
    route = render(
        {"name": "bg", "backends": [{"pool": "blue", "weight": 80}, {"pool": "green", "weight": 20}], "served_model_routes": False}
    )
    assert route["spec"]["rules"][0]["backendRefs"] == [
        {**POOL, "name": "blue", "weight": 80},
        {**POOL, "name": "green", "weight": 20},
    ]


def test_bypass_on_weighted_route_goes_to_the_models_own_pool():
    green = ServedModelConfig.model_validate({"name": "m-green", "pool": "green"})
    route = render({"name": "bg", "backends": [{"pool": "blue", "weight": 50}, {"pool": "green", "weight": 50}]}, [green])
    assert route["spec"]["rules"][0]["backendRefs"] == [{**POOL, "name": "green"}]


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
    assert route["spec"]["rules"] == [
        {
            "matches": [
                {
                    "path": {"type": "PathPrefix", "value": "/"},
                    "headers": [{"type": "Exact", "name": "x-model-family", "value": "llama3-70b"}],
                    "method": "POST",
                },
                {"path": {"type": "Exact", "value": "/v1/models"}},
            ],
            "filters": [STRIP],
            "backendRefs": [{**POOL, "name": "p70b"}],
        }
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
    with pytest.raises(ValueError, match="needs 17 rules; an HTTPRoute allows 16"):
        render({"name": "r", "pool": "p"}, models)
