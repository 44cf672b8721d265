"""What a stack exposes through its gateways: the runtimes' client API, explicit widening, and the
internal endpoints no route may reach (exact messages)."""

from __future__ import annotations

import copy
from typing import Callable

import pytest

from components.catalog.runtime_preset import Route
from components.config import ConfigError, config_values_from_stack_file
from components.config.exposure import exposure_report, narrow, route_api_paths
from components.stack_config import parse_stack_config
from igw.stackfile import read_stack

LOCAL, _ = config_values_from_stack_file({"config": read_stack("local")})


def values(mutate: Callable[[dict], object] = lambda v: None) -> dict:
    v = copy.deepcopy(LOCAL)
    mutate(v)
    return v


def problems(mutate: Callable[[dict], object]) -> list[str]:
    with pytest.raises(ConfigError) as err:
        parse_stack_config(values(mutate))
    return err.value.problems


def default_route(v: dict) -> dict:
    return v["gateways"][0]["routes"][1]


def test_local_stack_exposes_the_openai_api_only():
    cfg = parse_stack_config(values())
    assert exposure_report(cfg) == [
        "inference-gateway/invoke: /invoke/v1/completions, /invoke/v1/chat/completions, /invoke/v1/embeddings, "
        "/invoke/v1/responses, /invoke/v1/models",
        "inference-gateway/default: /v1/completions, /v1/chat/completions, /v1/embeddings, /v1/responses, /v1/models",
    ]


def test_widening_is_explicit_and_reported():
    cfg = parse_stack_config(values(lambda v: default_route(v).update(expose=[{"path": "/tokenize"}, {"path": "/detokenize"}])))
    route = cfg.gateways[0].routes[1]
    assert [(p.path, p.source) for p in route_api_paths(cfg, route)][-2:] == [("/tokenize", "expose[0]"), ("/detokenize", "expose[1]")]
    assert exposure_report(cfg)[1].endswith("; widened by the stack: /tokenize (expose[0]), /detokenize (expose[1])")


@pytest.mark.parametrize("path, match, hit", [
    ("/v1/unload_lora_adapter", "Exact", "/v1/unload_lora_adapter (vllm)"),
    ("/metrics", "Exact", "/metrics (vllm)"),
    ("/sleep", "Exact", "/sleep (vllm)"),
])
def test_widening_to_an_internal_endpoint_is_refused(path, match, hit):
    assert problems(lambda v: default_route(v).update(expose=[{"path": path, "match": match}])) == [
        f"gateways[0].routes[1].expose[0]: {path!r} reaches internal endpoints {hit}; admin and internal endpoints are "
        "never exposed through a gateway (expose only client API paths)"
    ]


def test_widening_everything_is_refused_and_names_what_it_would_reach():
    (problem,) = problems(lambda v: default_route(v).update(expose=[{"path": "/", "match": "PathPrefix"}]))
    assert problem.startswith("gateways[0].routes[1].expose[0]: '/*' reaches internal endpoints /collective_rpc (vllm), /health (vllm), ")
    assert "/v1/load_lora_adapter (vllm)" in problem and "/metrics (vllm)" in problem


def test_runtime_override_cannot_route_internal_endpoints():
    def mutate(v):
        v["model_servers"][0]["runtime_overrides"] = {"routes": [{"path": "/v1/", "match": "PathPrefix"}]}

    assert problems(mutate) == [
        "model_servers[0].runtime_overrides.routes[0]: '/v1/*' reaches internal endpoints of runtime vllm "
        "(/v1/load_lora_adapter, /v1/unload_lora_adapter); admin and internal endpoints are never exposed through a gateway"
    ]


def test_predict_route_must_be_client_api():
    def mutate(v):
        v["gateways"][0]["routes"][1]["predict_route"] = "/v1/load_lora_adapter"

    assert problems(mutate) == [
        "gateways[0].routes[1].predict_route: '/v1/load_lora_adapter' is not a client API path of the route's runtimes "
        "(allowed: /v1/completions, /v1/chat/completions, /v1/embeddings, /v1/responses, /v1/models); add it to expose "
        "to widen the route explicitly"
    ]


def test_path_prefix_outside_the_client_api_exposes_nothing():
    assert problems(lambda v: default_route(v).update(path_prefix="/sim/", served_model_routes=False)) == [
        "gateways[0].routes[1].path_prefix: '/sim/' covers none of the client API paths (/v1/completions, "
        "/v1/chat/completions, /v1/embeddings, /v1/responses, /v1/models); the route would expose nothing",
    ]


def test_invocations_path_must_be_client_api():
    assert problems(lambda v: default_route(v).update(invocations_path="/metrics")) == [
        "gateways[0].routes[1].invocations_path: '/metrics' is not a client API path (allowed: /v1/completions, "
        "/v1/chat/completions, /v1/embeddings, /v1/responses, /v1/models); /served-models/<name>/invocations would reach nothing"
    ]


def test_match_paths_must_be_client_api():
    assert problems(lambda v: default_route(v).update(matches=[{"path_exact": "/metrics"}])) == [
        "gateways[0].routes[1].matches[0].path_exact: '/metrics' is not a client API path (allowed: /v1/completions, "
        "/v1/chat/completions, /v1/embeddings, /v1/responses, /v1/models)"
    ]


def test_model_placeholder_expands_to_client_facing_models_only():
    def mutate(v):
        v["model_servers"][0]["runtime"] = "triton"
        v["model_servers"][0].pop("lora_adapters")
        v["model_servers"][0].pop("max_loras")
        v["models"] = [{"name": "meta-llama/Llama-3.1-8B-Instruct", "pool": "vllm-llama3-8b-instruct"}]
        v["gateways"][0]["routes"] = [{"name": "default", "pool": "vllm-llama3-8b-instruct", "served_model_routes": False}]

    cfg = parse_stack_config(values(mutate))
    paths = [p.path for p in route_api_paths(cfg, cfg.gateways[0].routes[0]) if p.protocol == "http"]
    m = "/v2/models/meta-llama/Llama-3.1-8B-Instruct"
    assert paths == ["/v2", m, f"{m}/ready", f"{m}/infer", f"{m}/versions/"]


def test_narrow():
    api = [Route("/v1/models"), Route("/api/v1/task/", "PathPrefix")]
    assert narrow(api, "/") == api
    assert narrow(api, "/v1") == [Route("/v1/models")]
    assert narrow(api, "/api/v1/task/x") == [Route("/api/v1/task/x", "PathPrefix")]
    assert narrow(api, "/metrics") == []
