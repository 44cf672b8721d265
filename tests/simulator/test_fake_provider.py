"""The fake external provider (vllm_simulator.fake_provider) as a process: OpenAI's API behind its
key check, streaming, the control API (slow, failing, down, rotated key, more models) and TLS for
the provider's host name from the stack's local CA (igw/local/provider_tls.py)."""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from endpoint_picker import loopback
from igw.local.provider_tls import CA_CERT, host_certificate

KEY = "sk-fake-provider-test-0123456789"


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fake-provider")
    key = tmp / "key"
    key.write_text(KEY + "\n")
    cert, cert_key = host_certificate(tmp / "openai", "api.openai.com")
    api, control = loopback.free_port("127.0.0.1"), loopback.free_port("127.0.0.1")
    proc = subprocess.Popen([sys.executable, "-m", "vllm_simulator.fake_provider", "--host", "127.0.0.1", "--port", str(api),
                             "--control-port", str(control), "--key-file", str(key), "--models", "gpt-4o,text-embedding-3-small",
                             "--tls-cert", str(cert), "--tls-key", str(cert_key)], stdout=subprocess.PIPE, text=True)
    assert "fake openai provider on https://127.0.0.1" in proc.stdout.readline()
    ca = tmp / CA_CERT
    client = httpx.Client(base_url=f"https://127.0.0.1:{api}", verify=False, timeout=10,
                          headers={"Authorization": f"Bearer {KEY}"})
    ctl = httpx.Client(base_url=f"http://127.0.0.1:{control}", timeout=10)
    try:
        yield type("Fake", (), {"api": client, "ctl": ctl, "key": key, "ca": ca, "port": api})
    finally:
        client.close()
        ctl.close()
        proc.terminate()
        proc.wait(10)


def chat(fake, **body) -> httpx.Response:
    return fake.api.post("/v1/chat/completions", json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}],
                                                       "max_tokens": 3, **body})


def test_it_serves_its_host_name_from_the_local_ca(fake):
    ctx = ssl.create_default_context(cafile=str(fake.ca))
    with socket.create_connection(("127.0.0.1", fake.port)) as raw, ctx.wrap_socket(raw, server_hostname="api.openai.com") as tls:
        assert tls.getpeercert()["subjectAltName"] == (("DNS", "api.openai.com"),)
    with pytest.raises(ssl.SSLCertVerificationError):
        with socket.create_connection(("127.0.0.1", fake.port)) as raw:
            ctx.wrap_socket(raw, server_hostname="api.anthropic.com")


def test_chat_completions_and_embeddings(fake):
    r = chat(fake)
    assert r.status_code == 200
    assert (r.json()["model"], r.json()["choices"][0]["message"]["content"]) == ("gpt-4o", "This answer comes")
    assert {"x-request-id", "openai-organization", "set-cookie"} <= set(r.headers)
    r = fake.api.post("/v1/completions", json={"model": "gpt-4o", "prompt": "hi", "max_tokens": 2})
    assert r.json()["choices"][0]["text"] == "This answer"
    r = fake.api.post("/v1/embeddings", json={"model": "text-embedding-3-small", "input": ["a", "b"], "dimensions": 3})
    assert [len(d["embedding"]) for d in r.json()["data"]] == [3, 3]


def test_streaming_with_usage(fake):
    with fake.api.stream("POST", "/v1/chat/completions", json={
            "model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, "stream": True,
            "stream_options": {"include_usage": True}}) as r:
        events = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    assert '"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}' in events[-2]
    assert len(events) == 4


def test_the_key_is_checked_and_echoed_masked_as_openai_does(fake):
    r = fake.api.post("/v1/chat/completions", json={"model": "gpt-4o"}, headers={"Authorization": "Bearer sk-wrong-key-xyz"})
    assert r.status_code == 401
    assert r.json()["error"] == {"message": "Incorrect API key provided: sk-***xyz. You can find your API key at "
                                            "https://platform.example/account/api-keys.",
                                 "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}
    assert fake.ctl.get("/fake/state").json()["last_request"]["key_matched"] is False
    fake.key.write_text("sk-rotated-key\n")  # the key file is re-read: a rotation
    try:
        assert chat(fake).status_code == 401
    finally:
        fake.key.write_text(KEY)
    assert chat(fake).status_code == 200


def test_unknown_models_until_added(fake):
    r = chat(fake, model="gpt-4o-mini")
    assert (r.status_code, r.json()["error"]["code"]) == (404, "model_not_found")
    fake.ctl.post("/fake/control", json={"add_models": ["gpt-4o-mini"]})
    assert chat(fake, model="gpt-4o-mini").status_code == 200


def test_slow_failing_and_down(fake):
    fake.ctl.post("/fake/control", json={"delay_ms": 300})
    t = time.monotonic()
    assert chat(fake).status_code == 200 and time.monotonic() - t >= 0.3
    fake.ctl.post("/fake/control", json={"delay_ms": 0, "fail_status": 503})
    r = chat(fake)
    assert (r.status_code, r.json()["error"]["type"]) == (503, "server_error")
    fake.ctl.post("/fake/control", json={"fail_status": None, "down": True})
    with pytest.raises(httpx.ConnectError):
        chat(fake)
    assert fake.ctl.get("/fake/state").json()["down"] is True
    fake.ctl.post("/fake/control", json={"down": False})
    assert chat(fake).status_code == 200
