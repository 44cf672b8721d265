"""OpenAI API shapes as vLLM serves them, over real HTTP (httpx and the openai client)."""

from __future__ import annotations

import base64
import socket
import struct

import httpx
import openai
import pytest

from .conftest import MODEL, parse_sse


def oai(sim) -> openai.OpenAI:
    return openai.OpenAI(base_url=sim.url + "/v1", api_key="x", max_retries=0, timeout=10)


def test_completions_response_shape_and_usage(sim):
    r = oai(sim).completions.create(model=MODEL, prompt="The capital of France is", max_tokens=7,
                                    extra_body={"ignore_eos": True})
    assert r.object == "text_completion"
    assert r.id.startswith("cmpl-")
    assert r.model == MODEL
    assert len(r.choices) == 1 and r.choices[0].finish_reason == "length"
    assert isinstance(r.choices[0].text, str) and len(r.choices[0].text.encode()) == 7 * 4
    u = r.usage
    assert u.prompt_tokens == 6  # 24 bytes / 4
    assert u.completion_tokens == 7
    assert u.total_tokens == 13
    assert u.prompt_tokens_details.cached_tokens == 0


def test_chat_completion_response_shape(sim):
    r = oai(sim).chat.completions.create(
        model=MODEL, messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
        max_completion_tokens=5, extra_body={"ignore_eos": True})
    assert r.object == "chat.completion" and r.id.startswith("chatcmpl-")
    msg = r.choices[0].message
    assert msg.role == "assistant" and len(msg.content.split()) == 5
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 5
    assert r.usage.prompt_tokens_details.cached_tokens == 0


def test_response_ids_follow_x_request_id_like_vllm(client):
    """vLLM names a response after the request's X-Request-Id (behind Envoy: the gateway's request
    id, also in its access log), else the body's request_id, else a random id."""
    chat = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    assert client.post("/v1/chat/completions", json=chat, headers={"x-request-id": "r-1"}).json()["id"] == "chatcmpl-r-1"
    done = client.post("/v1/completions", json={"model": MODEL, "prompt": "x", "max_tokens": 2, "stream": True},
                       headers={"x-request-id": "r-2"}).text
    assert '"id":"cmpl-r-2"' in done.replace(" ", "")
    assert client.post("/v1/completions", json={"model": MODEL, "prompt": "x", "max_tokens": 2,
                                                "request_id": "mine"}).json()["id"] == "cmpl-mine"
    a, b = (client.post("/v1/completions", json={"model": MODEL, "prompt": "x", "max_tokens": 2}).json()["id"] for _ in "ab")
    assert a != b and a.startswith("cmpl-")


def test_output_length_without_ignore_eos_is_deterministic(client):
    body = {"model": MODEL, "prompt": "same prompt every time", "max_tokens": 40}
    a = client.post("/v1/completions", json=body).json()
    b = client.post("/v1/completions", json=body).json()
    n = a["usage"]["completion_tokens"]
    assert 20 <= n <= 40
    assert b["usage"]["completion_tokens"] == n
    assert a["choices"][0]["text"] == b["choices"][0]["text"]
    assert a["choices"][0]["finish_reason"] == ("length" if n == 40 else "stop")


def test_default_max_tokens_applies(make_sim):
    s = make_sim(default_max_tokens=9)
    r = httpx.post(s.url + "/v1/completions", json={"model": MODEL, "prompt": "x", "ignore_eos": True})
    assert r.json()["usage"]["completion_tokens"] == 9


def test_completions_streaming_done_and_include_usage(client):
    r = client.post("/v1/completions", json={"model": MODEL, "prompt": "hello", "max_tokens": 4, "stream": True,
                                             "ignore_eos": True, "stream_options": {"include_usage": True}})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(r.text)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    text_chunks = [c for c in chunks if c["choices"]]
    assert len(text_chunks) == 4
    assert all(c["object"] == "text_completion" for c in chunks)
    assert [c["choices"][0]["finish_reason"] for c in text_chunks] == [None, None, None, "length"]
    usage = chunks[-1]
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 4
    assert usage["usage"]["prompt_tokens"] == 2
    assert "prompt_tokens_details" in usage["usage"]


def test_chat_streaming_with_openai_client(sim):
    stream = oai(sim).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "count"}], max_tokens=6, stream=True,
        stream_options={"include_usage": True}, extra_body={"ignore_eos": True})
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(content.split()) == 6
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 6
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"


def test_streaming_without_include_usage_has_no_usage_chunk(client):
    r = client.post("/v1/chat/completions", json={"model": MODEL, "messages": [{"role": "user", "content": "a"}],
                                                  "max_tokens": 3, "stream": True})
    events = parse_sse(r.text)
    assert events[-1] == "[DONE]"
    assert all(e["choices"] for e in events[:-1])


def test_non_stream_text_equals_concatenated_stream_tokens(client):
    base = {"model": MODEL, "prompt": "identical prompt", "max_tokens": 12, "ignore_eos": True}
    full = client.post("/v1/completions", json=base).json()["choices"][0]["text"]
    events = parse_sse(client.post("/v1/completions", json={**base, "stream": True}).text)
    assert "".join(e["choices"][0]["text"] for e in events[:-1]) == full


def test_echo_mode_repeats_last_user_message(make_sim):
    s = make_sim(mode="echo")
    r = httpx.post(s.url + "/v1/chat/completions", json={
        "model": MODEL, "messages": [{"role": "user", "content": "ping pong"}], "max_tokens": 3,
        "ignore_eos": True}).json()
    assert r["choices"][0]["message"]["content"] == "ping pong"  # 9 bytes = 3 tokens


def test_embeddings_deterministic_unit_vectors(sim):
    c = oai(sim)
    a = c.embeddings.create(model=MODEL, input=["alpha", "beta"])
    b = c.embeddings.create(model=MODEL, input="alpha")
    assert len(a.data) == 2 and len(a.data[0].embedding) == 4096
    assert a.data[0].embedding == b.data[0].embedding
    assert a.data[0].embedding != a.data[1].embedding
    assert abs(sum(x * x for x in a.data[0].embedding) - 1.0) < 1e-3
    assert a.usage.prompt_tokens == 3  # "alpha" 5 B -> 2, "beta" 4 B -> 1


def test_embeddings_float_format_and_dimensions(client):
    r = client.post("/v1/embeddings", json={"model": MODEL, "input": "abc", "dimensions": 16,
                                            "encoding_format": "float"}).json()
    assert r["object"] == "list" and r["data"][0]["object"] == "embedding"
    assert len(r["data"][0]["embedding"]) == 16
    r2 = client.post("/v1/embeddings", json={"model": MODEL, "input": "abc", "dimensions": 16,
                                             "encoding_format": "base64"}).json()
    raw = base64.b64decode(r2["data"][0]["embedding"])
    assert list(struct.unpack("<16f", raw)) == pytest.approx(r["data"][0]["embedding"])


def test_models_lists_base_model_and_adapters_with_parent(client):
    r = client.get("/v1/models").json()
    assert r["object"] == "list"
    ids = [m["id"] for m in r["data"]]
    assert ids == [MODEL, "sql-lora"]
    base, lora = r["data"]
    assert base["parent"] is None and base["root"] == MODEL and base["owned_by"] == "vllm"
    assert base["max_model_len"] == 131072
    assert lora["parent"] == MODEL and lora["root"] == "/adapters/sql"


def test_served_model_name_replaces_model_id(make_sim):
    s = make_sim(served_model_name=["llama-8b"])
    assert [m["id"] for m in httpx.get(s.url + "/v1/models").json()["data"]] == ["llama-8b"]
    ok = httpx.post(s.url + "/v1/completions", json={"model": "llama-8b", "prompt": "x", "max_tokens": 1})
    assert ok.status_code == 200 and ok.json()["model"] == "llama-8b"
    assert httpx.post(s.url + "/v1/completions", json={"model": MODEL, "prompt": "x"}).status_code == 404


def test_unknown_model_is_404_with_vllm_error_shape(sim, client):
    r = client.post("/v1/completions", json={"model": "nope", "prompt": "x"})
    assert r.status_code == 404
    assert r.json() == {"error": {"message": "The model `nope` does not exist.", "type": "NotFoundError",
                                  "param": "model", "code": 404}}
    with pytest.raises(openai.NotFoundError):
        oai(sim).chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])


def test_request_to_adapter_echoes_adapter_name(client):
    r = client.post("/v1/chat/completions", json={"model": "sql-lora", "messages": [{"role": "user", "content": "q"}],
                                                  "max_tokens": 2}).json()
    assert r["model"] == "sql-lora"


def test_load_and_unload_lora_adapter_vllm_semantics(client):
    r = client.post("/v1/load_lora_adapter", json={"lora_name": "new", "lora_path": "/a/new"})
    assert r.status_code == 200 and r.text == "Success: LoRA adapter 'new' added successfully."
    assert "new" in [m["id"] for m in client.get("/v1/models").json()["data"]]
    assert client.post("/v1/completions", json={"model": "new", "prompt": "x", "max_tokens": 1}).status_code == 200

    dup = client.post("/v1/load_lora_adapter", json={"lora_name": "new", "lora_path": "/a/new"})
    assert dup.status_code == 400
    assert dup.json()["error"] == {"message": "The lora adapter 'new' has already been loaded.",
                                   "type": "InvalidUserInput", "param": None, "code": 400}
    missing = client.post("/v1/load_lora_adapter", json={"lora_name": "x"})
    assert missing.status_code == 400
    assert missing.json()["error"]["message"] == "Both 'lora_name' and 'lora_path' must be provided."

    r = client.post("/v1/unload_lora_adapter", json={"lora_name": "new"})
    assert r.status_code == 200 and r.text == "Success: LoRA adapter 'new' removed successfully."
    assert "new" not in [m["id"] for m in client.get("/v1/models").json()["data"]]
    assert client.post("/v1/completions", json={"model": "new", "prompt": "x"}).status_code == 404
    gone = client.post("/v1/unload_lora_adapter", json={"lora_name": "new"})
    assert gone.status_code == 404
    assert gone.json()["error"] == {"message": "The lora adapter 'new' cannot be found.",
                                    "type": "NotFoundError", "param": None, "code": 404}


def test_version_tokenize_detokenize(client):
    assert "version" in client.get("/version").json()
    t = client.post("/tokenize", json={"model": MODEL, "prompt": "héllo wörld!", "return_token_strs": True}).json()
    assert t["count"] == 4 and len(t["tokens"]) == 4  # 14 UTF-8 bytes -> ceil(14/4)
    assert t["max_model_len"] == 131072
    assert "".join(t["token_strs"]).replace("\ufffd", "") != ""
    d = client.post("/detokenize", json={"model": MODEL, "tokens": t["tokens"]}).json()
    assert d["prompt"] == "héllo wörld!"


def test_context_length_error(make_sim):
    s = make_sim(max_model_len=100)
    r = httpx.post(s.url + "/v1/completions", json={"model": MODEL, "prompt": "x" * 400, "max_tokens": 10})
    assert r.status_code == 400
    assert r.json()["error"]["message"].startswith("This model's maximum context length is 100 tokens.")


def test_every_response_carries_pod_and_path_headers(client):
    for method, path in (("GET", "/health"), ("GET", "/metrics"), ("GET", "/does/not/exist?x=1"),
                         ("POST", "/v1/completions"), ("GET", "/v1/models")):
        r = client.request(method, path, json={"model": MODEL, "prompt": "x", "max_tokens": 1}
                           if method == "POST" else None)
        assert r.headers["x-inference-pod"] == "sim-pod-0", path
        assert r.headers["x-sim-path"] == path


def test_unknown_path_404_and_wrong_method_405(client):
    r = client.get("/v2/anything")
    assert r.status_code == 404 and r.json() == {"detail": "Not Found"}
    r = client.get("/v1/completions")
    assert r.status_code == 405


def test_pod_name_from_env(monkeypatch, make_sim):
    monkeypatch.setenv("POD_NAME", "from-env")
    s = make_sim(pod_name="")
    assert httpx.get(s.url + "/health").headers["x-inference-pod"] == "from-env"


def test_health_503_while_starting(make_sim):
    import time
    with httpx.Client(timeout=5) as c:
        t0 = time.monotonic()
        s = make_sim(startup_duration=2.5)
        assert c.get(s.url + "/health").status_code == 503
        assert c.post(s.url + "/v1/completions", json={"model": MODEL, "prompt": "x"}).status_code == 503
        assert time.monotonic() - t0 < 2.5  # still inside the startup window
        time.sleep(max(0.0, 2.6 - (time.monotonic() - t0)))
        assert c.get(s.url + "/health").status_code == 200


def test_keep_alive_pipelining_and_chunked_request_body(sim):
    host, port = sim.url.removeprefix("http://").split(":")
    body = b'{"model":"%s","prompt":"abc","max_tokens":2}' % MODEL.encode()
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    reqs = (b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked +
            b"GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(reqs)
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    assert data.count(b"HTTP/1.1 200 OK") == 3
    assert b'"text_completion"' in data and b'"version"' in data


def test_client_disconnect_aborts_request(sim, client):
    with httpx.Client(base_url=sim.url, timeout=5) as c2:
        with c2.stream("POST", "/v1/completions", json={"model": MODEL, "prompt": "x", "max_tokens": 5000,
                                                        "stream": True, "ignore_eos": True}) as r:
            next(r.iter_lines())
    import time
    for _ in range(100):
        st = client.get("/sim/state").json()
        if st["running"] == 0:
            break
        time.sleep(0.02)
    assert st["running"] == 0 and st["request_success"]["abort"] == 1 and st["kv_blocks_used"] == 0


def test_malformed_request_line_gets_400_and_pod_header(sim):
    host, port = sim.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(b"NONSENSE\r\n\r\n")
        data = s.recv(65536)
    assert data.startswith(b"HTTP/1.1 400") and b"x-inference-pod: sim-pod-0" in data


def test_invalid_json_body_is_400(client):
    r = client.post("/v1/completions", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["type"] == "BadRequestError"


def test_http_1_0_streaming_closes_connection(sim):
    host, port = sim.url.removeprefix("http://").split(":")
    body = b'{"prompt":"abc","max_tokens":2,"stream":true}'
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(b"POST /v1/completions HTTP/1.0\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, payload = data.partition(b"\r\n\r\n")
    assert b"transfer-encoding" not in head.lower()
    assert payload.rstrip().endswith(b"data: [DONE]")


def test_keep_alive_timeout_closes_idle_connections(make_sim):
    s = make_sim(keep_alive_timeout=0.3)
    host, port = s.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as c:
        c.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.recv(65536).startswith(b"HTTP/1.1 200")
        import time
        t = time.monotonic()
        assert c.recv(65536) == b""  # server closed the idle connection
        assert 0.2 < time.monotonic() - t < 3
