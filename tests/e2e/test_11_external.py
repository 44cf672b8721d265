"""Seed 004's external models end to end: `igw up --stack external` (the committed stack) and the
`openai` client through the gateway's real Envoy, the endpoint's picker (API keys, rate limits,
the model check, the model rewrite) and the egress proxy (a real Envoy running the rendered
config: the provider key injected from its file, TLS to the provider's host name verified) to a
fake provider (vllm_simulator.fake_provider).

What each test pins: chat, completions, embeddings and streaming reach the provider as its own
model and come back under the endpoint's name; the client's key and stack headers never reach
the provider, the provider's account headers never reach the client; a refused provider key is a
502 `provider-auth-failed` (not the client's 401), a provider that cannot be reached a 503
`provider-unavailable` while every other endpoint keeps serving; a per-endpoint limit counts
every user; `igw status` reports each endpoint and its external model.
"""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest

from .external_stack import USERS, ExternalStack

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ext(tmp_path_factory):
    stack = ExternalStack(tmp_path_factory.mktemp("igw-external"))
    r = stack.up("--detach")
    assert r.returncode == 0, f"igw up failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    stack.up_output = r.stdout
    try:
        yield stack
    finally:
        stack.down()


def client(ext: ExternalStack, base: str, user: str = "alice") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{ext.url}{base}/v1", api_key=USERS[user], max_retries=0, timeout=30)


def test_summary_states_what_stands_in_for_the_provider(ext):
    assert "External models (egress proxies: real Envoy with the rendered config" in ext.up_output
    assert "endpoint 'gpt-4o-chat': openai api.openai.com -> fake provider https://" in ext.up_output
    assert 'client = OpenAI(base_url="http://127.0.0.1:' in ext.up_output


def test_chat_reaches_the_provider_as_its_model_with_the_provider_key(ext):
    r = client(ext, "/openai-chat").chat.completions.create(
        model="gpt-4o-chat", messages=[{"role": "user", "content": "Hello"}], max_tokens=6)
    assert r.model == "gpt-4o-chat"  # restored by the picker
    assert r.choices[0].message.content == "This answer comes from gpt-4o at"
    seen = ext.fake("gpt-4o-chat")["last_request"]
    assert (seen["path"], seen["host"], seen["model"], seen["key_matched"]) == ("/v1/chat/completions", "api.openai.com", "gpt-4o", True)
    assert USERS["alice"] not in json.dumps(seen)


def test_streamed_chat_with_usage(ext):
    stream = client(ext, "/openai-chat").chat.completions.create(
        model="gpt-4o-chat", messages=[{"role": "user", "content": "Hello"}], max_tokens=4, stream=True,
        stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "This answer comes from "
    assert {c.model for c in chunks} == {"gpt-4o-chat"}
    assert chunks[-1].usage.completion_tokens == 4


def test_completions_and_embeddings(ext):
    c = client(ext, "/openai-completions", "carol").completions.create(model="gpt-instruct", prompt="Hi", max_tokens=3)
    assert (c.model, c.choices[0].text) == ("gpt-instruct", "This answer comes")
    assert ext.fake("gpt-instruct")["last_request"]["model"] == "gpt-3.5-turbo-instruct"
    e = client(ext, "/openai-embeddings").embeddings.create(model="openai-embeddings", input=["a", "b"], dimensions=8)
    from vllm_simulator.fake_provider import embedding

    assert [d.embedding for d in e.data] == [embedding("a", 8), embedding("b", 8)]
    assert e.model == "openai-embeddings"


def test_headers_that_never_cross_the_proxy(ext):
    r = ext.http.post(f"{ext.url}/openai-chat/v1/chat/completions", json={
        "model": "gpt-4o-chat", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}, headers={
        "Authorization": f"Bearer {USERS['alice']}", "x-api-key": "client-key", "openai-organization": "org-client",
        "cookie": "session=1", "x-forwarded-for": "203.0.113.9", "x-llm-d-model-name-rewrite": "gpt-4"})
    assert r.status_code == 200, r.text
    sent = ext.fake("gpt-4o-chat")["last_request"]["headers"]  # the fake records all but authorization
    assert set(sent) <= {"host", "user-agent", "accept", "accept-encoding", "content-type", "content-length", "x-request-id"}, sent
    assert "set-cookie" not in r.headers and "openai-organization" not in r.headers
    assert ext.fake("gpt-4o-chat")["last_request"]["model"] == "gpt-4o"  # the control header did not pick gpt-4


def test_an_endpoint_serves_its_task_only(ext):
    auth = {"Authorization": f"Bearer {USERS['alice']}"}
    for path in ("/openai-chat/v1/completions", "/openai-chat/v1/models", "/openai-chat/healthz", "/openai-chat/v1/embeddings"):
        r = ext.http.post(f"{ext.url}{path}", json={"model": "gpt-4o-chat", "prompt": "x"}, headers=auth)
        assert (r.status_code, r.json()["error"]["code"]) == (404, "route-not-found"), path


def test_other_models_never_spend_the_provider_key(ext):
    before = ext.fake("gpt-4o-chat")["counts"]["requests"]
    with pytest.raises(openai.NotFoundError) as e:
        client(ext, "/openai-chat").chat.completions.create(model="gpt-4-32k", messages=[{"role": "user", "content": "x"}])
    assert e.value.body["code"] == "model-not-found"
    assert ext.fake("gpt-4o-chat")["counts"]["requests"] == before


def test_a_client_without_an_api_key_is_refused(ext):
    with pytest.raises(openai.AuthenticationError) as e:
        openai.OpenAI(base_url=f"{ext.url}/openai-chat/v1", api_key="not-a-key", max_retries=0).chat.completions.create(
            model="gpt-4o-chat", messages=[{"role": "user", "content": "x"}])
    assert (e.value.status_code, e.value.body["code"]) == (401, "unauthorized")


def test_a_refused_provider_key_is_a_clear_502(ext):
    ext.fake("gpt-4o-chat", expected_key="sk-rotated-at-the-provider")
    try:
        with pytest.raises(openai.InternalServerError) as e:
            client(ext, "/openai-chat").chat.completions.create(model="gpt-4o-chat", messages=[{"role": "user", "content": "x"}])
    finally:
        ext.fake("gpt-4o-chat", expected_key=None)
    assert e.value.status_code == 502
    assert e.value.response.headers["x-provider-status"] == "401"
    assert e.value.body == {
        "message": "the provider openai refused the API key of endpoint 'gpt-4o-chat'; the endpoint's provider key "
                   "(models[].external.api_key_secret) must be replaced by its owner",
        "type": "service_unavailable_error", "param": None, "code": "provider-auth-failed"}
    assert "Incorrect API key" not in e.value.response.text and "sk-" not in e.value.response.text


def test_per_endpoint_limit_counts_every_user(ext):
    """gpt-instruct: 5 calls a minute for the whole endpoint, whoever calls."""
    outcomes = []
    for i in range(8):
        user = ("alice", "bob")[i % 2]
        try:
            client(ext, "/openai-completions", user).completions.create(model="gpt-instruct", prompt="x", max_tokens=1)
            outcomes.append((user, 200))
        except openai.RateLimitError as e:
            outcomes.append((user, 429))
            last = e
    assert [o for _, o in outcomes].count(200) <= 5
    assert {u for u, o in outcomes if o == 429} == {"alice", "bob"}, outcomes
    assert last.body["code"] == "rate-limited" and int(last.response.headers["retry-after"]) >= 1


def test_provider_down_is_a_503_and_nothing_else_is_affected(ext):
    ext.fake("gpt-4o-chat", down=True)
    try:
        with pytest.raises(openai.InternalServerError) as e:
            client(ext, "/openai-chat", "bob").chat.completions.create(model="gpt-4o-chat", messages=[{"role": "user", "content": "x"}])
        assert e.value.status_code == 503 and e.value.body["code"] == "provider-unavailable"
        assert e.value.body["message"].startswith("the provider openai (api.openai.com) could not be reached (")
        llama = openai.OpenAI(base_url=f"{ext.url}/v1", api_key=USERS["bob"], max_retries=0).chat.completions.create(
            model="meta-llama/Llama-3.1-8B-Instruct", messages=[{"role": "user", "content": "x"}], max_tokens=2)
        assert llama.choices[0].message.content
        assert client(ext, "/openai-embeddings", "bob").embeddings.create(model="openai-embeddings", input="x").data
        code, report = ext.status()
        assert ext.endpoint(report, "gpt-4o-chat")["state"]["ready"] == "READY"  # the proxies are fine; the provider is not ours
    finally:
        ext.fake("gpt-4o-chat", down=False)
    assert client(ext, "/openai-chat", "bob").chat.completions.create(
        model="gpt-4o-chat", messages=[{"role": "user", "content": "x"}], max_tokens=1).choices


def test_a_slow_provider_is_waited_for(ext):
    ext.fake("gpt-4o-chat", delay_ms=1500)
    try:
        t = time.monotonic()
        r = client(ext, "/openai-chat", "carol").chat.completions.create(
            model="gpt-4o-chat", messages=[{"role": "user", "content": "x"}], max_tokens=1)
        assert r.choices and time.monotonic() - t >= 1.5
    finally:
        ext.fake("gpt-4o-chat", delay_ms=0)


def test_status_reports_every_endpoint_and_its_external_model(ext):
    code, report = ext.status()
    assert code == 0, report
    chat = ext.endpoint(report, "gpt-4o-chat")
    assert chat["state"] == {"ready": "READY", "config_update": "NOT_UPDATING"}
    assert chat["tags"] == [{"key": "team", "value": "gen-ai"}]
    assert chat["served_entities"] == [{
        "name": "gpt-4o-chat",
        "external_model": {"provider": "openai", "name": "gpt-4o", "task": "llm/v1/chat", "api_base": "https://api.openai.com/v1"},
        "traffic_percentage": 100,
        "state": {"deployment": "DEPLOYMENT_READY", "deployment_state_message": "2/2 pods ready"}}]
    claude = ext.endpoint(report, "claude-chat")["served_entities"][0]["external_model"]
    assert claude == {"provider": "anthropic", "name": "claude-sonnet-4-5", "task": "llm/v1/chat",
                      "api_base": "https://api.anthropic.com/v1"}
    assert ext.endpoint(report, "meta-llama/Llama-3.1-8B-Instruct")["served_entities"][0]["entity_name"] == \
        "meta-llama/Llama-3.1-8B-Instruct"


def test_status_follows_a_proxy_pod_that_dies(ext):
    """The completions endpoint has one proxy pod: killed, its endpoint is NOT_READY until the
    supervisor has restarted it."""
    import os
    import signal

    pid = ext.state()["processes"]["openai-completions-egress-0"]["pid"]
    os.killpg(pid, signal.SIGKILL)
    seen = set()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        code, report = ext.status()
        e = ext.endpoint(report, "gpt-instruct")
        seen.add((e["state"]["ready"], e["served_entities"][0]["state"]["deployment"]))
        if ("READY", "DEPLOYMENT_READY") in seen and len(seen) > 1:
            break
        time.sleep(0.2)
    assert ("NOT_READY", "DEPLOYMENT_CREATING") in seen, seen
    assert ("READY", "DEPLOYMENT_READY") in seen, seen
    with httpx.Client() as h:  # and it serves again
        r = h.post(f"{ext.url}/openai-embeddings/v1/embeddings", json={"model": "openai-embeddings", "input": "x"},
                   headers={"Authorization": f"Bearer {USERS['dave']}"})
        assert r.status_code == 200
