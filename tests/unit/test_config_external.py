"""Seed 004's external models in the stack config: every constraint is an error naming its YAML
path, and a provider key is never echoed back."""

from __future__ import annotations

import copy

import pytest
import yaml

from components.config import config_values_from_stack_file
from components.config.external import conversion_problems, endpoint_kinds, model_paths, parse_secret_ref
from components.stack_config import parse_stack_config
from igw.stackfile import STACKS_DIR

from .config_cases import SERVING_BASE, config_problems

EXTERNAL = {"provider": "openai", "name": "gpt-4o", "task": "llm/v1/chat", "api_key_secret": "{{secrets/openai/api_key}}"}
BASE = {
    **SERVING_BASE,
    "pools": [*SERVING_BASE["pools"], {"name": "openai-chat"}],
    "models": [*SERVING_BASE["models"], {"name": "gpt-4o-chat", "pool": "openai-chat", "external": EXTERNAL}],
    "gateways": [{"name": "gw", "routes": [{"name": "r", "pool": "llama"},
                                            {"name": "chat", "pool": "openai-chat", "base_path": "/openai-chat"}]}],
}


def with_external(**fields) -> dict:
    values = copy.deepcopy(BASE)
    values["models"][1]["external"].update(fields)
    return values


def problems(values: dict) -> list[str]:
    return config_problems(values)


def test_the_committed_external_stack_is_valid():
    ours, _ = config_values_from_stack_file(yaml.safe_load((STACKS_DIR / "Pulumi.external.yaml").read_text()))
    cfg = parse_stack_config(ours)
    assert endpoint_kinds(cfg)["gpt-4o-chat"] == "external"
    assert endpoint_kinds(cfg)["meta-llama/Llama-3.1-8B-Instruct"] == "self-hosted"


def test_an_external_pool_fails_closed_by_default():
    cfg = parse_stack_config(BASE)
    assert cfg.pool("openai-chat").failure_mode == "FailClose"
    assert cfg.pool("llama").failure_mode == "FailOpen"


def test_anthropic_serves_chat_only():
    assert problems(with_external(provider="anthropic", task="llm/v1/embeddings")) == [
        "models[1].external.task: 'llm/v1/embeddings' is not served by provider 'anthropic' (Anthropic's OpenAI SDK "
        "compatibility layer (chat completions only; no Messages API translation)); use llm/v1/chat, or provider openai "
        "/ openai-compatible"
    ]


def test_openai_compatible_needs_api_base():
    assert problems(with_external(provider="openai-compatible")) == [
        "models[1].external.api_base: is required for provider 'openai-compatible' (e.g. https://llm.example.com/v1)"
    ]


@pytest.mark.parametrize("url, why", [
    ("http://api.openai.com/v1", "'http://api.openai.com/v1' must be an https:// URL; the egress proxy originates TLS to the provider"),
    ("https://user:pw@llm.example.com/v1", "'https://user:pw@llm.example.com/v1' carries credentials; put the key in api_key_secret"),
    ("https://llm.example.com/v1?x=1", "'https://llm.example.com/v1?x=1' has a query or fragment; give only scheme, host, port and path"),
])
def test_api_base_must_be_a_plain_https_url(url, why):
    assert problems(with_external(api_base=url)) == [f"models[1].external.api_base: {why}"]


def test_a_plaintext_key_is_refused_without_being_repeated():
    found = problems(with_external(api_key_secret="sk-proj-abc123SECRET"))
    assert found == [
        "models[1].external.api_key_secret: is not a secret reference (the value is not shown); use "
        "{{secrets/<scope>/<key>}} (the Pulumi secret providerKeys.<scope>.<key>) or "
        "projects/<project>/secrets/<secret>/versions/<version> (Secret Manager)"
    ]
    assert "SECRET" not in found[0].replace("secret", "")


@pytest.mark.parametrize("ref, kind, fields", [
    ("{{secrets/my_scope/my_openai_api_key}}", "pulumi", {"scope": "my_scope", "key": "my_openai_api_key"}),
    ("projects/p-1/secrets/anthropic-key/versions/3", "secret-manager", {"project": "p-1", "secret": "anthropic-key", "location": None}),
    ("projects/p-1/locations/us-central1/secrets/k/versions/latest", "secret-manager", {"location": "us-central1", "secret": "k"}),
])
def test_secret_reference_forms(ref, kind, fields):
    parsed = parse_secret_ref(ref)
    assert parsed.kind == kind
    assert {k: getattr(parsed, k) for k in fields} == fields


def test_one_served_entity_no_split():
    values = copy.deepcopy(BASE)
    values["models"][1]["targets"] = [{"model": "gpt-4o", "weight": 100}]
    assert problems(values) == [
        "models[1].targets: an endpoint with an external model has exactly one served entity; remove targets "
        "(traffic splits are between self-hosted models)"
    ]


def test_an_external_model_needs_a_pool_of_its_own():
    values = copy.deepcopy(BASE)
    values["models"][1]["pool"] = "llama"
    values["pools"] = values["pools"][:1]
    values["gateways"][0]["routes"] = values["gateways"][0]["routes"][:1]
    assert problems(values) == [
        "models[1].pool: 'llama' runs model server 'vllm-llama3-8b-instruct'; an external model needs a pool of its own "
        "without model_server (pools[0]: remove model_server, or add a pool for this endpoint)"
    ]


def test_no_other_model_on_an_external_pool():
    values = copy.deepcopy(BASE)
    values["models"].append({"name": "gpt-4o-mini-chat", "pool": "openai-chat", "external": {**EXTERNAL, "name": "gpt-4o-mini"}})
    values["models"].append({"name": "food-review-2", "pool": "openai-chat"})
    assert problems(values) == [
        "models[2].pool: 'openai-chat' already serves the external model of models[1]; an endpoint with an external "
        "model has exactly one served entity: give each external model a pool of its own",
        "models[3].pool: 'openai-chat' serves the external model of models[1]; an endpoint with an external model has "
        "exactly one served entity: serve 'food-review-2' from a pool with a model_server",
    ]


def test_pools_of_external_models():
    values = copy.deepcopy(BASE)
    values["pools"][1].update(failure_mode="FailOpen", protocol="grpc")
    values["pools"].append({"name": "orphan"})
    assert problems(values) == [
        "pools[1].failure_mode: 'FailOpen' is not allowed for an external model's pool: without its picker the gateway "
        "would skip API keys, rate limits and the model check and spend the provider key on any request; use FailClose "
        "(the default for these pools)",
        "pools[1].protocol: 'grpc' is not supported for an external model (providers speak OpenAI's HTTP API)",
        "pools[2].model_server: is required (only the pool of an external model, models[].external, has none)",
    ]


def test_an_external_pool_name_leaves_room_for_its_proxy():
    name = "p" * 60
    values = copy.deepcopy(BASE)
    values["pools"][1]["name"] = name
    values["models"][1]["pool"] = name
    values["gateways"][0]["routes"][1]["pool"] = name
    assert problems(values) == [
        f"pools[1].name: '{name}' has 60 characters; an external model's pool names its egress proxy '<pool>-egress', "
        "so use at most 56"
    ]


def test_tags():
    values = copy.deepcopy(BASE)
    values["models"][1]["tags"] = {"bad key!": "x"}
    assert problems(values) == ["models[1].tags: tag key 'bad key!' is invalid; use 1-128 letters, digits, spaces or _.:/=+-@"]


@pytest.mark.parametrize("base_path, why", [
    ("/openai-chat/", "base_path '/openai-chat/' is invalid; use /<segment>[/<segment>...] of lowercase letters, digits, "
                      "'.', '_' or '-', without a trailing '/'"),
    ("/served-models/x", "base_path '/served-models/x' is under a path the gateway reserves (/served-models, /invoke)"),
])
def test_base_path(base_path, why):
    values = copy.deepcopy(BASE)
    values["gateways"][0]["routes"][1]["base_path"] = base_path
    assert problems(values) == [f"gateways[0].routes[1]: {why}"]


def test_conversions_both_ways_name_the_endpoint():
    cfg = parse_stack_config(BASE)
    before = {"food-review": "external", "gpt-4o-chat": "self-hosted", "gone": "external"}
    assert conversion_problems(before, endpoint_kinds(cfg), model_paths(cfg)) == [
        "models[0]: endpoint 'food-review' is an external endpoint and cannot be converted to a self-hosted model; "
        "create a new endpoint under another name (and remove this one)",
        "models[1]: endpoint 'gpt-4o-chat' is a self-hosted endpoint and cannot be converted to an external model; "
        "create a new endpoint under another name (and remove this one)",
    ]
    assert conversion_problems(endpoint_kinds(cfg), endpoint_kinds(cfg)) == []
