"""Nothing a client sends picks its own policy (director level, no network): identity from the
gateway-appended X-Forwarded-For hop or the API key, x-deployed-model-id resolved or refused,
rate limits and priority following the served model however it is reached."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
import pytest

from endpoint_picker.admission import ApiKeys
from endpoint_picker.config import load_config
from endpoint_picker.datastore import Datastore, Endpoint, parse_objective, parse_rewrite
from endpoint_picker.director import Director, client_address, normalized
from endpoint_picker.errors import BadRequest, ModelNotFound, TooManyRequests, error_body
from endpoint_picker.scheduling.registry import build_registry
from endpoint_picker.selfmetrics import SelfMetrics

SPLIT = {"metadata": {"name": "food-review", "creationTimestamp": "2026-01-01T00:00:00Z"},
         "spec": {"rules": [{"matches": [{"model": {"type": "Exact", "value": "food-review"}}],
                             "targets": [{"modelRewrite": "food-review", "weight": 90},
                                         {"modelRewrite": "food-review-v2", "weight": 10}]}]}}
OBJECTIVES = [
    {"metadata": {"name": "food-review", "annotations": {"inference-gateway.dev/model": "food-review"}}, "spec": {"priority": 0}},
    {"metadata": {"name": "cad-fabricator", "annotations": {"inference-gateway.dev/model": "cad-fabricator"}}, "spec": {"priority": -10}},
    {"metadata": {"name": "meta-llama-llama-3.1-8b-instruct", "annotations": {"inference-gateway.dev/model": "base"}}, "spec": {"priority": 100}},
]
DEPLOYED = {"current": "food-review", "challenger": "food-review-v2", "cad-fabricator": "cad-fabricator"}
LIMITED = {"models": {"deployed": DEPLOYED},
           "rate_limits": [{"key": "user", "calls": 2, "renewal_period": "minute", "model": "food-review"}]}


def director(config: dict[str, Any] | None = None, api_keys: ApiKeys | None = None) -> Director:
    cfg = load_config(config or {})
    store = Datastore()
    store.set_endpoints([Endpoint("pod0", "default", "10.0.0.1", 8000)])
    store.set_rewrites(parse_rewrite(SPLIT))
    store.set_objectives([parse_objective(o) for o in OBJECTIVES])
    store.synced = True
    return Director(cfg, store, build_registry().build(cfg.scheduling), SelfMetrics(), api_keys=api_keys)


def body(model: str | None = "food-review") -> bytes:
    return orjson.dumps({**({"model": model} if model else {}), "messages": [{"role": "user", "content": "hi"}]})


def xff(client: str, supplied: str = "") -> dict[str, str]:
    """What GKE's regional load balancer forwards: `<supplied>,<client-ip>,<lb-ip>`."""
    return {"x-forwarded-for": ",".join(x for x in (supplied, client, "10.129.0.5") if x)}


GKE = {"auth": {"client_address_hop": 2}}


def test_client_address_is_the_trusted_hop():
    assert client_address("1.2.3.4", 1) == "1.2.3.4"
    assert client_address("6.6.6.6, 1.2.3.4", 1) == "1.2.3.4"
    assert client_address("6.6.6.6,1.2.3.4,10.129.0.5", 2) == "1.2.3.4"
    assert client_address("1.2.3.4", 2) == "unknown-client-address"  # not through the gateway
    assert client_address("", 1) == "unknown-client-address"


def test_spoofed_forwarded_for_and_user_header_do_not_change_identity():
    d = director({**LIMITED, **GKE})
    for _ in range(2):
        d.route("/v1/chat/completions", xff("1.2.3.4"), body())
    for headers in (xff("1.2.3.4"), xff("1.2.3.4", supplied="9.9.9.9"), {**xff("1.2.3.4"), "x-user-id": "fresh"}):
        with pytest.raises(TooManyRequests):
            d.route("/v1/chat/completions", headers, body())
    d.route("/v1/chat/completions", xff("5.6.7.8"), body())  # another client


@pytest.mark.parametrize("how", ["bypass-path", "deployed-id", "internal-name"])
def test_limits_follow_the_served_model_however_it_is_reached(how):
    d = director({**LIMITED, **GKE})
    for _ in range(2):
        d.route("/v1/chat/completions", xff("1.2.3.4"), body())
    headers, payload = {
        "bypass-path": ({"x-llm-d-model-name-rewrite": "food-review"}, body("not-food-review")),  # set by the gateway
        "deployed-id": ({"x-deployed-model-id": "challenger"}, body("whatever")),
        "internal-name": ({}, body("food-review-v2")),
    }[how]
    with pytest.raises(TooManyRequests):
        d.route("/v1/chat/completions", {**xff("1.2.3.4"), **headers}, payload)


def test_deployed_model_id_serves_that_model_and_unknown_ids_are_404():
    d = director(LIMITED)
    r = d.route("/invoke/v1/chat/completions", {"x-deployed-model-id": "challenger"}, body("food-review"))
    assert (r.client_model, r.target_model) == ("food-review", "food-review-v2")
    assert orjson.loads(r.body)["model"] == "food-review-v2"
    with pytest.raises(ModelNotFound) as e:
        d.route("/invoke/v1/chat/completions", {"x-deployed-model-id": "no-such-model"}, body())
    assert (e.value.status, e.value.reason) == (404, "deployed-model-not-found")
    assert e.value.message == ("x-deployed-model-id 'no-such-model' is not deployed behind this endpoint "
                               "(deployed: cad-fabricator, challenger, current)")


def test_served_model_request_needs_no_model_in_its_body():
    r = director(LIMITED).route("/v1/chat/completions", {"x-llm-d-model-name-rewrite": "food-review-v2"}, body(None))
    assert r.target_model == "food-review-v2" and orjson.loads(r.body)["model"] == "food-review-v2"


def test_priority_follows_the_served_model_not_the_body():
    """A body naming the Critical base model cannot lift a request served as the Sheddable one."""
    d = director(LIMITED)
    assert d._priority(None, d.store.served_as("cad-fabricator")) == -10
    assert d.store.served_as("food-review-v2") == frozenset({"food-review"})  # internal name -> its owner
    assert d.store.served_as("base") == frozenset({"base"})
    # a saturated pool (no engine metrics: in-flight 5 against max_concurrency 1)
    sat = director({**LIMITED, "scrape": {"engine": "none"}, "saturation": {"max_concurrency": 1}})
    sat.store.inflight["10.0.0.1:8000"].requests = 5
    with pytest.raises(TooManyRequests) as e:
        sat.route("/v1/chat/completions", {"x-deployed-model-id": "cad-fabricator"}, body("base"))
    assert e.value.reason == "rejected-saturated"
    sat.route("/v1/chat/completions", {}, body("base"))  # the Critical model itself is never shed


def test_api_key_user_is_the_identity():
    keys = ApiKeys({hashlib.sha256(b"k-alice").hexdigest(): "alice", hashlib.sha256(b"k-bob").hexdigest(): "bob"})
    d = director(LIMITED, api_keys=keys)
    for _ in range(2):
        d.route("/v1/chat/completions", {"authorization": "Bearer k-alice", **xff("1.1.1.1")}, body())
    with pytest.raises(TooManyRequests):  # same key from another address: same user
        d.route("/v1/chat/completions", {"authorization": "Bearer k-alice", **xff("2.2.2.2")}, body())
    d.route("/v1/chat/completions", {"authorization": "Bearer k-bob", **xff("1.1.1.1")}, body())


def test_error_body_is_the_openai_error_object():
    assert orjson.loads(error_body(429, "rate-limited", "rate limit exceeded")) == {
        "error": {"message": "rate limit exceeded", "type": "rate_limit_error", "param": None, "code": "rate-limited"}}
    assert orjson.loads(error_body(418, "x", "y"))["error"]["type"] == "invalid_request_error"
    assert orjson.loads(error_body(599, "x", "y"))["error"]["type"] == "server_error"


@pytest.mark.parametrize("path", ["/v1/../metrics", "/invoke/v1/./models", "//metrics", "/v1/models/..", "/x/%2e%2e/metrics",
                                  "/v1%2Fmodels", "/v1%2fmodels", "/a\\b", "/api/v1/task/%2E%2E/x"])
def test_paths_not_in_normal_form_are_refused(path):
    assert not normalized(path)
    with pytest.raises(BadRequest) as e:
        director().route(path, {}, body())
    assert (e.value.status, e.value.reason) == (400, "path-not-normalized")


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/models?after=..%2F", "/v1/.well-known", "/v1/models/",
                                  "/v2/models/a.b/infer", "/api/v1/task/text-generation?x=%20"])
def test_normal_paths_pass(path):
    assert normalized(path)
