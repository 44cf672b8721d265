"""Completions, chat and streaming through Envoy + the picker to real vLLM (the `openai` client)."""

from __future__ import annotations

import httpx
import openai
import pytest

from .gateway import SERVED_HEADER

BASE = "tiny"
ADAPTERS = ("tiny-lora-a", "tiny-lora-b")
PROMPT = "the gateway picks an endpoint for the model server"


@pytest.fixture
def gw(gateway, servers):
    return gateway()  # the picker's default scorers


@pytest.fixture
def client(gw):
    raw = httpx.Client(timeout=120)
    c = openai.OpenAI(base_url=gw.url + "/v1", api_key="unused", http_client=raw, max_retries=0)
    yield c
    raw.close()


@pytest.mark.parametrize("model", [BASE, *ADAPTERS])
def test_completion(client, servers, model):
    raw = client.completions.with_raw_response.create(model=model, prompt=PROMPT, max_tokens=12,
                                                      extra_body={"ignore_eos": True})
    r = raw.parse()
    assert raw.headers[SERVED_HEADER] in {s.key for s in servers.all}
    assert r.model == model and r.object == "text_completion"
    assert r.usage.completion_tokens == 12 and r.usage.prompt_tokens > 0
    assert r.choices[0].text and r.choices[0].finish_reason == "length"


def test_adapters_change_the_output(client):
    """Greedy decoding of one prompt: base and each adapter answer differently (the LoRA weights
    are non-zero and vLLM applies them), and the same model answers the same twice."""
    def text(model: str) -> str:
        return client.completions.create(model=model, prompt=PROMPT, max_tokens=16, temperature=0,
                                         extra_body={"ignore_eos": True}).choices[0].text
    outputs = {m: text(m) for m in (BASE, *ADAPTERS)}
    assert len(set(outputs.values())) == 3, outputs
    assert text(ADAPTERS[0]) == outputs[ADAPTERS[0]]


@pytest.mark.parametrize("model", [BASE, ADAPTERS[1]])
def test_chat(client, model):
    r = client.chat.completions.create(model=model, max_tokens=8, extra_body={"ignore_eos": True},
                                       messages=[{"role": "system", "content": "be brief"},
                                                 {"role": "user", "content": "which endpoint"}])
    assert r.model == model and r.choices[0].message.role == "assistant"
    assert r.usage.completion_tokens == 8
    # The chat template wraps the messages: more prompt tokens than the words sent.
    assert r.usage.prompt_tokens > 4


def test_streamed_completion_with_usage(client):
    chunks = list(client.completions.create(model=ADAPTERS[0], prompt=PROMPT, max_tokens=10, stream=True,
                                            stream_options={"include_usage": True}, extra_body={"ignore_eos": True}))
    # Text chunks, then the usage chunk. How many text chunks varies: vLLM merges a request's
    # deltas when its API process reads them later than the engine makes them
    # (RequestOutputCollector), which on a busy 2-core machine can be all 10 tokens in one chunk.
    texts = [c.choices[0].text for c in chunks if c.choices]
    assert 1 <= len(texts) <= 11 and "".join(texts)   # at most one per token, plus a finish chunk
    assert chunks[-1].usage.completion_tokens == 10 and not chunks[-1].choices


def test_streamed_chat_ends_with_done(gw):
    body = {"model": BASE, "max_tokens": 6, "stream": True, "ignore_eos": True,
            "messages": [{"role": "user", "content": "stream it"}]}
    with gw.client.stream("POST", gw.url + "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = [line[len("data: "):] for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]" and len(events) >= 3


def test_models_list_names_adapters_with_their_parent(gw):
    data = gw.client.get(gw.url + "/v1/models").json()["data"]
    assert {m["id"]: m["parent"] for m in data} == {BASE: None, ADAPTERS[0]: BASE, ADAPTERS[1]: BASE}


def test_unknown_model_is_a_404_from_vllm(gw):
    r = gw.post("/v1/completions", {"model": "no-such-model", "prompt": "x", "max_tokens": 1})
    assert r.status_code == 404, r.text
    assert "no-such-model" in r.json()["error"]["message"]


def test_too_long_a_request_is_a_400(gw):
    r = gw.post("/v1/completions", {"model": BASE, "prompt": PROMPT, "max_tokens": 5000})
    assert r.status_code == 400, r.text
