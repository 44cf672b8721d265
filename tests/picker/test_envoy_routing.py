"""Real Envoy → real picker process → fake model servers: routing decisions end to end."""

from __future__ import annotations

import hashlib
import time

import httpx
import pytest

from endpoint_picker.testing.picker import write_endpoints

CHAT = "/v1/chat/completions"


def chat(model: str = "m", text: str = "hello", **extra):
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def test_routes_to_shortest_queue(stack):
    s = stack({"busy": {"waiting": 9}, "idle": {"waiting": 0}, "mid": {"waiting": 4}})
    s.wait_fresh()
    pods = {s.pod(s.post(CHAT, json=chat(text=f"q{i}"))) for i in range(5)}
    assert pods == {"idle"}


def test_routes_to_free_kv_cache(stack):
    s = stack({"full": {"kv": 0.95}, "free": {"kv": 0.05}})
    s.wait_fresh()
    assert {s.pod(s.post(CHAT, json=chat(text=f"k{i}"))) for i in range(5)} == {"free"}


def test_routes_to_pod_with_lora_loaded(stack):
    s = stack({
        "no-room": {"max_lora": 1, "running_loras": ["other"]},
        "loaded": {"max_lora": 2, "running_loras": ["sql-lora"]},
        "room": {"max_lora": 2, "running_loras": ["x"]},
    })
    s.wait_fresh()
    # Equal load elsewhere: loaded scores lora 1.0, room 0.8 (free slot), no-room 0.
    assert s.pod(s.post(CHAT, json=chat(model="sql-lora"))) == "loaded"


def test_prefix_affinity_follows_first_pick(stack):
    s = stack({"a": {}, "b": {}, "c": {}})
    s.wait_fresh()
    prefix = "You are a helpful assistant. " * 200  # ~5.8 KB shared system prompt
    first = s.pod(s.post(CHAT, json=chat(text=prefix + "question 0")))
    later = {s.pod(s.post(CHAT, json=chat(text=prefix + f"question {i}"))) for i in range(1, 6)}
    assert later == {first}


def test_fallback_when_first_endpoint_refuses(stack):
    # "dead" is listed but nothing listens there. It is never scraped, so its queue is its (zero)
    # in-flight count, which beats alive's 3 waiting: the picker puts dead first every time and
    # Envoy's override_host must retry the next address of the list.
    s = stack({"alive": {"waiting": 3}}, refused=("dead",))
    alive = next(p for p in s.pods if p["name"] == "alive")
    dead = next(p for p in s.pods if p["name"] == "dead")
    deadline = time.monotonic() + 10
    while f'picker_metrics_age_seconds{{endpoint="{alive["address"]}:{s.port}"}} -1' in s.picker_metrics():
        assert time.monotonic() < deadline, "alive never scraped"
        time.sleep(0.05)
    results = [s.post(CHAT, json=chat(text=f"f{i}")) for i in range(6)]
    assert all(r.status_code == 200 for r in results), [r.text for r in results]
    assert {s.pod(r) for r in results} == {"alive"}
    sent = results[0].json()["served_by"]["headers"]["x-gateway-destination-endpoint"]
    assert sent == f"{dead['address']}:{s.port},{alive['address']}:{s.port}"  # primary first, then fallback
    assert f'picker_decisions_total{{endpoint="{dead["address"]}:{s.port}",reason="scheduled"}} 6' in s.picker_metrics()


def test_bodyless_request_gets_an_endpoint(stack):
    s = stack({"a": {}, "b": {}})
    r = s.client.get(s.url + "/v1/models")
    assert r.status_code == 200
    assert s.pod(r) in {"a", "b"}


def test_one_megabyte_body_is_chunked_and_forwarded_exactly(stack):

    import orjson

    s = stack({"a": {}})
    body = orjson.dumps(chat(text="x" * (1024 * 1024)))
    r = s.post(CHAT, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text
    seen = r.json()["served_by"]
    assert seen["received_bytes"] == len(body)
    assert seen["sha256"] == hashlib.sha256(body).hexdigest()
    # FULL_DUPLEX_STREAMED: Envoy always strips content-length and sends the body chunked upstream.
    assert seen["content_length"] is None


def test_buffered_mode_keeps_exact_content_length_after_rewrite(stack):
    import orjson

    rewrite = {"apiVersion": "llm-d.ai/v1alpha2", "kind": "InferenceModelRewrite",
               "metadata": {"name": "rw", "namespace": "default"},
               "spec": {"poolRef": {"name": "test-pool"},
                        "rules": [{"matches": [{"model": {"type": "Exact", "value": "public"}}],
                                   "targets": [{"modelRewrite": "internal-model-v2", "weight": 1}]}]}}
    s = stack({"a": {}}, objects=[rewrite], request_body_mode="BUFFERED")
    body = orjson.dumps(chat(model="public", text="y" * (1024 * 1024)))
    r = s.post(CHAT, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text
    seen = r.json()["served_by"]
    assert seen["received_model"] == "internal-model-v2"
    assert int(seen["content_length"]) == seen["received_bytes"] == len(body) + len("internal-model-v2") - len("public")
    assert r.json()["model"] == "public"  # restored for the client


@pytest.mark.parametrize("mode", ["FULL_DUPLEX_STREAMED", "BUFFERED"])
def test_kserve_v2_rewrite_moves_the_model_in_the_path_and_restores_model_name(stack, mode):
    rewrite = {"apiVersion": "llm-d.ai/v1alpha2", "kind": "InferenceModelRewrite",
               "metadata": {"name": "rw", "namespace": "default"},
               "spec": {"poolRef": {"name": "test-pool"},
                        "rules": [{"matches": [{"model": {"type": "Exact", "value": "public"}}],
                                   "targets": [{"modelRewrite": "internal-v2", "weight": 1}]}]}}
    s = stack({"a": {}}, objects=[rewrite], request_body_mode=mode)
    body = b'{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1.0]}]}'
    r = s.post("/v2/models/public/versions/3/infer?trace=1", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text
    seen = r.json()["served_by"]
    assert seen["path"] == "/v2/models/internal-v2/versions/3/infer?trace=1"  # version, verb, query kept
    assert seen["sha256"] == hashlib.sha256(body).hexdigest()  # the body names no model: untouched
    assert r.json()["model_name"] == "public"  # restored for the client


def test_sse_stream_passthrough_restores_client_model(stack):
    rewrite = {"apiVersion": "llm-d.ai/v1alpha2", "kind": "InferenceModelRewrite",
               "metadata": {"name": "rw", "namespace": "default"},
               "spec": {"poolRef": {"name": "test-pool"},
                        "rules": [{"targets": [{"modelRewrite": "served-model", "weight": 1}]}]}}
    s = stack({"a": {}}, objects=[rewrite])
    with s.client.stream("POST", s.url + CHAT, json=chat(model="client-model", stream=True)) as r:
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/event-stream"
        text = "".join(r.iter_text())
    events = [e for e in text.split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    assert len(events) == 4
    assert text.count('"model":"client-model"') == 3
    assert "served-model" not in text


def test_model_name_rewrite_header_bypasses_split(stack):
    rewrite = {"apiVersion": "llm-d.ai/v1alpha2", "kind": "InferenceModelRewrite",
               "metadata": {"name": "rw", "namespace": "default"},
               "spec": {"poolRef": {"name": "test-pool"},
                        "rules": [{"matches": [{"model": {"type": "Exact", "value": "chat"}}],
                                   "targets": [{"modelRewrite": "v1", "weight": 100}, {"modelRewrite": "v2", "weight": 0}]}]}}
    s = stack({"a": {}}, objects=[rewrite])
    r = s.post(CHAT, json=chat(model="chat"), headers={"x-llm-d-model-name-rewrite": "v2"})
    assert r.json()["served_by"]["received_model"] == "v2"
    assert r.json()["model"] == "chat"


@pytest.mark.parametrize(
    "body,headers,status,reason",
    [
        pytest.param(b"{not json", {}, 400, "bad-request", id="unparseable-400"),
        pytest.param(b'{"prompt": "hi"}', {}, 400, "missing-model", id="missing-model-400"),
        pytest.param(b'{"model": "nope", "prompt": "hi"}', {"authorization": "Bearer k1"}, 404, "model-not-found", id="unknown-model-404"),
        pytest.param(b'{"model": "m", "prompt": "hi"}', {}, 401, "unauthorized", id="no-key-401"),
        pytest.param(b'{"model": "m", "prompt": "hi"}', {"authorization": "Bearer wrong"}, 401, "unauthorized", id="bad-key-401"),
    ],
)
def test_rejections(stack, tmp_path, body, headers, status, reason):
    import hashlib

    keys = tmp_path / "keys.yaml"
    keys.write_text(f"{hashlib.sha256(b'k1').hexdigest()}: alice\n")
    auth = {} if status == 400 else headers
    s = stack({"a": {}}, config={"models": {"served": ["m"], "reject_unknown": True}},
              api_keys_file=None if status == 400 else keys)
    r = s.post("/v1/completions", content=body, headers={"content-type": "application/json", **auth})
    assert r.status_code == status, r.text
    assert r.headers["x-llm-d-request-dropped-reason"] == reason
    assert r.headers["content-type"] == "application/json"
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}  # the OpenAI error object
    assert error["code"] == reason and error["param"] is None
    assert error["type"] == {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error"}[status]


def from_address(address: str) -> httpx.Client:
    """A client whose connections come from this loopback address (its own identity)."""
    return httpx.Client(timeout=20, transport=httpx.HTTPTransport(local_address=address))


def test_rate_limit_429_with_retry_after_per_client_address(stack):
    """Without API keys the user is the address Envoy appended to X-Forwarded-For: a spoofed
    X-Forwarded-For or a fresh x-user-id does not get a new bucket, another client does."""
    s = stack({"a": {}}, config={"rate_limits": [{"key": "user", "calls": 3, "renewal_period": "minute"}]})
    bob, carol = from_address("127.0.0.2"), from_address("127.0.0.3")
    codes = [bob.post(s.url + CHAT, json=chat(), headers={"x-user-id": "bob"}).status_code for _ in range(3)]
    limited = bob.post(s.url + CHAT, json=chat(), headers={"x-user-id": "bob"})
    spoofed = [bob.post(s.url + CHAT, json=chat(), headers=h).status_code
               for h in ({"x-user-id": "fresh"}, {"x-forwarded-for": "203.0.113.9"}, {"x-forwarded-for": "127.0.0.3"})]
    other = carol.post(s.url + CHAT, json=chat(), headers={"x-user-id": "bob"})
    assert codes == [200, 200, 200]
    assert limited.status_code == 429
    assert limited.headers["x-llm-d-request-dropped-reason"] == "rate-limited"
    assert limited.json()["error"]["code"] == "rate-limited" and limited.json()["error"]["type"] == "rate_limit_error"
    assert 1 <= int(limited.headers["retry-after"]) <= 20
    assert spoofed == [429, 429, 429]
    assert other.status_code == 200
    assert "picker_rate_limited_requests_total 4" in s.picker_metrics()


def test_trusted_user_header_only_when_configured(stack):
    """auth.user_header is for a proxy in front that authenticates users and sets it."""
    s = stack({"a": {}}, config={"rate_limits": [{"key": "user", "calls": 1, "renewal_period": "minute"}],
                                 "auth": {"user_header": "x-user-id"}})
    assert s.post(CHAT, json=chat(), headers={"x-user-id": "bob"}).status_code == 200
    assert s.post(CHAT, json=chat(), headers={"x-user-id": "bob"}).status_code == 429
    assert s.post(CHAT, json=chat(), headers={"x-user-id": "carol"}).status_code == 200


def test_no_endpoints_503(stack):
    s = stack({"a": {}})
    write_endpoints(s.endpoints_file, [])
    time.sleep(0.6)
    r = s.post(CHAT, json=chat())
    assert r.status_code == 503
    assert r.headers["x-llm-d-request-dropped-reason"] == "rejected-no-endpoints"


def test_stale_metrics_shed_only_sheddable(stack):
    objs = [
        {"apiVersion": "llm-d.ai/v1alpha2", "kind": "InferenceObjective", "metadata": {"name": "batch", "namespace": "default"},
         "spec": {"poolRef": {"name": "test-pool"}, "priority": -10}},
        {"apiVersion": "llm-d.ai/v1alpha2", "kind": "InferenceObjective", "metadata": {"name": "interactive", "namespace": "default"},
         "spec": {"poolRef": {"name": "test-pool"}, "priority": 100}},
    ]
    s = stack({"a": {}, "b": {}}, objects=objs)
    s.wait_fresh()
    assert s.post(CHAT, json=chat(), headers={"x-gateway-inference-objective": "batch"}).status_code == 200
    for b in s.backends.values():
        b.state.metrics_mode = "hang"  # scrapes stop returning: metrics age past 200 ms
    time.sleep(0.6)
    shed = s.post(CHAT, json=chat(), headers={"x-gateway-inference-objective": "batch"})
    assert shed.status_code == 429
    assert shed.headers["x-llm-d-request-dropped-reason"] == "rejected-saturated"
    assert "retry-after" in shed.headers
    assert s.post(CHAT, json=chat(), headers={"x-gateway-inference-objective": "interactive"}).status_code == 200
    assert s.post(CHAT, json=chat()).status_code == 200  # no objective: priority 0, never shed
    # The objective named like the model applies without a header.
    assert s.post(CHAT, json=chat(model="batch")).status_code == 429


def test_hot_reload_of_objects_and_endpoints(stack):
    from endpoint_picker.testing.picker import write_manifests, pool_manifest

    s = stack({"a": {}, "b": {"waiting": 5}})
    s.wait_fresh()
    assert s.post(CHAT, json=chat(model="alias")).json()["served_by"]["received_model"] == "alias"
    rewrite = {"apiVersion": "llm-d.ai/v1alpha2", "kind": "InferenceModelRewrite",
               "metadata": {"name": "rw", "namespace": "default"},
               "spec": {"poolRef": {"name": "test-pool"},
                        "rules": [{"matches": [{"model": {"type": "Exact", "value": "alias"}}],
                                   "targets": [{"modelRewrite": "real", "weight": 1}]}]}}
    write_manifests(s.manifests / "pool.yaml", [pool_manifest("test-pool", ports=(s.port,)), rewrite])
    # Only pod b stays in the pool.
    write_endpoints(s.endpoints_file, [p for p in s.pods if p["name"] == "b"])
    time.sleep(0.7)
    r = s.post(CHAT, json=chat(model="alias"))
    assert r.json()["served_by"]["received_model"] == "real"
    assert s.pod(r) == "b"


def test_failure_mode_allow_when_picker_is_down_buffered(stack):
    s = stack({"a": {}}, failure_mode_allow=True, request_body_mode="BUFFERED")
    s.picker.stop()
    r = s.post(CHAT, json=chat())
    assert r.status_code == 200  # Envoy's override_host fallback policy picked a pool host itself
    assert s.pod(r) == "a"


def test_picker_metrics_endpoint(stack):
    s = stack({"a": {}})
    s.wait_fresh()
    s.post(CHAT, json=chat())
    text = s.picker_metrics()
    assert "picker_decision_duration_seconds_count 1" in text
    assert 'picker_decisions_total{endpoint="' in text
    assert "picker_ready_endpoints 1" in text


def test_subset_hint_from_envoy_metadata(stack):
    # Stand-in for a gateway that sets envoy.lb.subset_hint: copy a request header into it.
    s = stack({"a": {}, "b": {}, "c": {}})
    target = next(p for p in s.pods if p["name"] == "b")
    # The stack's Envoy has no header_to_metadata filter: run a second one that does.
    from endpoint_picker.envoy_bootstrap import build_bootstrap
    from endpoint_picker.testing.envoy import EnvoyProcess, free_port

    port = free_port()
    cfg = build_bootstrap(port, s.picker.address, endpoints=[f"{p['address']}:{s.port}" for p in s.pods], report_served=True)
    hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    hcm["http_filters"].insert(0, {"name": "envoy.filters.http.header_to_metadata", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.header_to_metadata.v3.Config",
        "request_rules": [{"header": "x-test-subset", "on_header_present": {
            "metadata_namespace": "envoy.lb.subset_hint", "key": "x-gateway-destination-endpoint-subset",
            "type": "STRING"}}]}})
    envoy = EnvoyProcess(cfg, port)
    try:
        url = f"http://127.0.0.1:{port}{CHAT}"
        hint = f"{target['address']}:{s.port}"
        pods = {s.pod(s.client.post(url, json=chat(text=f"s{i}"), headers={"x-test-subset": hint})) for i in range(4)}
        assert pods == {"b"}
        r = s.client.post(url, json=chat(), headers={"x-test-subset": "10.255.0.1:1"})
        assert r.status_code == 503
        assert r.headers["x-llm-d-request-dropped-reason"] == "rejected-no-endpoints"
    finally:
        envoy.stop()


def test_concurrent_mixed_load_keeps_accounting_consistent(stack):
    from concurrent.futures import ThreadPoolExecutor

    rewrite = {"apiVersion": "llm-d.ai/v1alpha2", "kind": "InferenceModelRewrite",
               "metadata": {"name": "rw", "namespace": "default"},
               "spec": {"poolRef": {"name": "test-pool"},
                        "rules": [{"targets": [{"modelRewrite": "v1", "weight": 1}, {"modelRewrite": "v2", "weight": 1}]}]}}
    s = stack({"a": {}, "b": {}, "c": {}}, objects=[rewrite])
    s.wait_fresh()

    def one(i: int) -> tuple[int, str]:
        stream = i % 3 == 0
        r = s.post(CHAT, json=chat(model="public", text=f"req {i % 7}", stream=stream))
        return r.status_code, r.text

    with ThreadPoolExecutor(max_workers=16) as pool:  # 150 requests, 16 at a time
        results = list(pool.map(one, range(150)))
    assert all(code == 200 for code, _ in results)
    assert all("public" in text and '"model":"v' not in text for _, text in results)  # always restored
    time.sleep(0.2)
    inflight = [l for l in s.picker_metrics().splitlines() if l.startswith("picker_inflight_requests{")]
    assert len(inflight) == 3 and all(l.endswith(" 0") for l in inflight)  # every request released
    assert "picker_decision_duration_seconds_count 150" in s.picker_metrics()


def test_inflight_held_until_the_response_ends_with_response_headers_skipped(stack):
    """The default Envoy config skips response headers (fewer gRPC messages); Envoy must still keep
    the ext_proc stream open until the response ends, so a long generation stays in flight, on
    the endpoint that served it (fallback read from the body messages' metadata)."""
    s = stack({"slow": {"waiting": 3, "stream_delay_s": 0.6}}, refused=("dead",))
    slow = next(p for p in s.pods if p["name"] == "slow")
    dead = next(p for p in s.pods if p["name"] == "dead")
    slow_key, dead_key = f"{slow['address']}:{s.port}", f"{dead['address']}:{s.port}"
    deadline = time.monotonic() + 10
    while f'picker_metrics_age_seconds{{endpoint="{slow_key}"}} -1' in s.picker_metrics():
        assert time.monotonic() < deadline, "slow never scraped"
        time.sleep(0.05)

    def inflight() -> dict[str, str]:
        lines = [l for l in s.picker_metrics().splitlines() if l.startswith("picker_inflight_requests{")]
        return {l.split('"')[1]: l.rsplit(" ", 1)[1] for l in lines}

    with s.client.stream("POST", s.url + CHAT, json=chat(text="long", stream=True)) as r:
        assert r.status_code == 200
        chunks = r.iter_bytes()
        first = next(chunks)  # the first piece; the next ones come 0.6 s apart
        assert first
        time.sleep(0.2)
        assert inflight() == {slow_key: "1", dead_key: "0"}  # moved from the refused primary
        rest = b"".join(chunks)
    assert (first + rest).endswith(b"data: [DONE]\n\n")
    deadline = time.monotonic() + 5
    while inflight() != {slow_key: "0", dead_key: "0"}:
        assert time.monotonic() < deadline, inflight()
        time.sleep(0.05)
