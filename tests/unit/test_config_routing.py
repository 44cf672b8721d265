"""Gateway / route / observability config: rejections with their exact messages."""

from __future__ import annotations

import copy
from typing import Callable

import pytest

from components.config import ConfigError, config_values_from_stack_file
from components.stack_config import parse_stack_config
from igw.stackfile import read_stack

PROD, _ = config_values_from_stack_file({"config": read_stack("prod")})


def problems(mutate: Callable[[dict], object]) -> list[str]:
    values = copy.deepcopy(PROD)
    mutate(values)
    with pytest.raises(ConfigError) as err:
        parse_stack_config(values)
    return err.value.problems


def route(values: dict, gateway: int, index: int) -> dict:
    return values["gateways"][gateway]["routes"][index]


def test_prod_is_valid():
    cfg = parse_stack_config(copy.deepcopy(PROD))
    assert [g.name for g in cfg.gateways] == ["external", "internal"]
    assert [r.shape for r in cfg.gateways[0].routes] == ["predict", "invoke"]


def test_unsupported_gateway_class():
    assert problems(lambda v: v["gateways"][0].update({"class": "gke-l7-global-external-managed"})) == [
        "gateways[0].class: 'gke-l7-global-external-managed' is not supported; use gke-l7-regional-external-managed or gke-l7-rilb"
    ]


@pytest.mark.parametrize("prefix", ["/v1/*", "/", "*", "/invoke/*"])
def test_invoke_prefix_other_than_star(prefix):
    assert problems(lambda v: route(v, 0, 1).update(invoke_route_prefix=prefix)) == [
        f"gateways[0].routes[1].invoke_route_prefix: {prefix!r} is not supported; '/*' is the only allowed invoke_route_prefix"
    ]


def test_both_predict_route_and_invoke_prefix():
    assert problems(lambda v: route(v, 0, 0).update(invoke_route_prefix="/*")) == [
        "gateways[0].routes[0]: set only one of predict_route, invoke_route_prefix or base_path"
    ]


def test_gateway_region_without_proxy_only_subnet():
    assert problems(lambda v: v.update(network={"proxy_only_subnets": [{"region": "us-east4"}]})) == [
        "network.proxy_only_subnets: gateway region 'us-central1' has no proxy-only subnet; regional gateways need one "
        "(add {region: us-central1, cidr: 10.129.0.0/23})"
    ]


def test_predict_route_must_start_with_slash():
    assert problems(lambda v: route(v, 0, 0).update(predict_route="v1/chat/completions")) == [
        "gateways[0].routes[0]: predict_route 'v1/chat/completions' must start with '/'"
    ]


def test_match_paths_not_allowed_on_fixed_path_routes():
    assert problems(lambda v: route(v, 0, 1).update(matches=[{"path_prefix": "/v1"}])) == [
        "gateways[0].routes[1]: matches[0] sets a path but the route uses invoke_route_prefix, which fixes the path; use headers or method only"
    ]


def test_pool_and_backends_are_exclusive():
    assert problems(lambda v: route(v, 0, 0).update(backends=[{"pool": "llama3-8b"}])) == [
        "gateways[0].routes[0]: set exactly one of pool or backends"
    ]


def test_unknown_pool_in_backends():
    assert problems(lambda v: route(v, 1, 1).update(backends=[{"pool": "llama3-405b", "weight": 1}])) == [
        "gateways[1].routes[1].backends[0].pool: 'llama3-405b' is not an inference pool; use one of llama3-8b, llama3-70b"
    ]


def test_global_access_needs_internal_gateway():
    assert problems(lambda v: v["gateways"][0].update(global_access=True)) == [
        "gateways[0]: global_access applies to internal (gke-l7-rilb) gateways only"
    ]


def test_https_listener_needs_tls():
    assert problems(lambda v: v["gateways"][0]["listeners"][1].pop("tls")) == [
        "gateways[0].listeners[1]: an HTTPS listener needs tls (certificate_secret or certificate_manager_certificates)"
    ]


def test_served_names_must_be_unique_per_gateway():
    def mutate(v):
        v["models"][2]["targets"] = [{"name": "current", "model": "cad-fabricator", "weight": 100}]

    assert problems(mutate)[0] == (
        "gateways[0]: served name 'current' means 'food-review' (pool 'llama3-8b') and 'cad-fabricator' (pool 'llama3-8b'); "
        "give the targets distinct names (models[].targets[].name)"
    )


def test_too_many_served_models_for_one_httproute():
    def mutate(v):
        v["models"] += [
            {"name": f"alias-{i}", "pool": "llama3-8b", "targets": [{"name": f"alias-{i}", "model": "food-review", "weight": 100}]}
            for i in range(12)
        ]

    # Only the path_prefix route grows a rule per served model; predict and invoke routes leave
    # x-deployed-model-id to the picker (one pool), so their rule count does not depend on models.
    assert problems(mutate) == [
        "gateways[1].routes[0]: needs 17 HTTPRoute rules; at most 16 are allowed (one rule per served model on "
        "path_prefix routes, one per client API path on invoke routes). Set served_model_routes: false or split the route"
    ]


def test_gateway_model_armor_needs_model_armor_config():
    def mutate(v):
        v.pop("model_armor")
        v["gateways"][1]["model_armor"] = True

    assert problems(mutate) == ["gateways[1].model_armor: true needs model_armor with templates and guards"]


def test_model_armor_settings_must_fit_the_metadata_value():
    def mutate(v):
        v["model_armor"]["guards"] += [
            {"model": f"model-{i}", "prompt_template": "llm-prompt-guard", "response_template": "llm-response-guard"} for i in range(5)
        ]

    assert problems(mutate) == [
        "model_armor.guards: the model_armor_settings value would be 1387 characters; the GCPTrafficExtension allows 1023. "
        "Use fewer guards (model: default covers every other model)"
    ]


def test_notification_channel_names():
    assert problems(lambda v: v["observability"].update(notification_channels=["ops"])) == [
        "observability.notification_channels: 'ops' is not a channel name; use projects/<project>/notificationChannels/<id>"
    ]
