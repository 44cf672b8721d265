"""The OpenAI API through the local gateway: chat and completions, streaming and not, adapters,
invoke routes and the served-model bypass."""

from __future__ import annotations

import pytest

from .conftest import ADDRESS_BASE, BASE_MODEL, POOL


def test_up_reports_what_runs(local_stack):
    out = local_stack.up_output
    assert local_stack.url in out
    for needle in (POOL, "FailOpen", "food-review=90", "food-review-v2=10", "curl -s", "from openai import OpenAI",
                   f"{ADDRESS_BASE}:8000", "igw down --stack local"):
        assert needle in out, needle
    st = local_stack.state()
    assert st["status"] == "ready"
    sims = local_stack.procs("simulator")
    net, first = ADDRESS_BASE.rsplit(".", 1)
    assert len(sims) == 4 and {s["address"] for s in sims} == {f"{net}.{i}" for i in range(int(first), int(first) + 4)}
    assert all(set(s["adapters"]) == {"food-review", "food-review-v2", "cad-fabricator"} for s in sims)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_chat_completions(local_stack, stream):
    client = local_stack.client()
    msgs = [{"role": "user", "content": "Say something about food."}]
    if stream:
        chunks = list(client.chat.completions.create(model=BASE_MODEL, messages=msgs, max_tokens=16, stream=True))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text and all(c.model == BASE_MODEL for c in chunks)
        assert chunks[-1].choices[0].finish_reason in ("length", "stop") or chunks[-2].choices[0].finish_reason
    else:
        raw = client.chat.completions.with_raw_response.create(model=BASE_MODEL, messages=msgs, max_tokens=16)
        r = raw.parse()
        assert r.model == BASE_MODEL and r.choices[0].message.content
        assert 0 < r.usage.completion_tokens <= 16
        assert local_stack.served_pod(r.id).startswith(POOL)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_completions(local_stack, stream):
    client = local_stack.client()
    if stream:
        chunks = list(client.completions.create(model=BASE_MODEL, prompt="Once upon a time", max_tokens=8, stream=True))
        assert "".join(c.choices[0].text for c in chunks if c.choices)
    else:
        r = client.completions.create(model=BASE_MODEL, prompt="Once upon a time", max_tokens=8)
        assert r.choices[0].text and r.model == BASE_MODEL


def test_food_review_lands_on_pods_with_the_adapter(local_stack):
    client = local_stack.client()
    pods = set()
    for i in range(12):
        raw = client.chat.completions.with_raw_response.create(
            model="food-review", messages=[{"role": "user", "content": f"Review dish {i}"}], max_tokens=4,
            extra_headers={"x-user-id": "adapter-check"})
        assert raw.parse().model == "food-review"  # the client sees the name it asked for
        pods.add(local_stack.served_pod(raw.parse().id))
    for pod in pods:
        st = local_stack.sim_state(pod)
        assert "food-review" in st["loaded_lora_adapters"], (pod, st["loaded_lora_adapters"])
        # The adapter was actually activated on that pod (a GPU slot or the CPU LRU cache).
        assert {"food-review", "food-review-v2"} & set(st["gpu_lora_slots"] + st["cpu_lora_cache"])


def test_invoke_route_reaches_the_server_path(local_stack):
    r = local_stack.http.get(local_stack.url + "/invoke/v1/models")
    assert r.status_code == 200, r.text
    assert r.headers["x-sim-path"] == "/v1/models"
    ids = {m["id"] for m in r.json()["data"]}
    assert {BASE_MODEL, "food-review", "food-review-v2", "cad-fabricator"} <= ids
    # and through the openai client pointed at the invoke prefix
    models = openai_models(local_stack, "/invoke/v1")
    assert BASE_MODEL in models


def openai_models(stack, base: str) -> set[str]:
    import openai

    c = openai.OpenAI(base_url=stack.url + base, api_key="unused", max_retries=0, timeout=10)
    return {m.id for m in c.models.list()}


def test_invoke_prefix_chat(local_stack):
    import openai

    c = openai.OpenAI(base_url=local_stack.url + "/invoke/v1", api_key="unused", max_retries=0, timeout=30)
    raw = c.chat.completions.with_raw_response.create(model=BASE_MODEL, messages=[{"role": "user", "content": "hi"}],
                                                      max_tokens=4)
    assert raw.headers["x-sim-path"] == "/v1/chat/completions"


def test_served_model_route_bypasses_the_split(local_stack):
    """POST /served-models/challenger/invocations always reaches food-review-v2 (never the 90%
    side), whatever model the body names; the default route would split."""
    n = 40
    for i in range(n):
        r = local_stack.http.post(local_stack.url + "/served-models/challenger/invocations",
                                  json={"model": "food-review", "messages": [{"role": "user", "content": f"q{i}"}],
                                        "max_tokens": 2},
                                  headers={"x-user-id": "bypass-check"})
        assert r.status_code == 200, r.text
        assert r.headers["x-sim-path"] == "/v1/chat/completions"
    rows = local_stack.access_log(lambda r: r["user"] == "bypass-check", n)
    assert len(rows) == n
    assert {r["model"] for r in rows} == {"food-review-v2"}
    assert {r["path"] for r in rows} == {"/served-models/challenger/invocations"}
    assert {r["upstream_path"] for r in rows} == {"/v1/chat/completions"}


def test_invoke_route_with_deployed_model_header_targets_one_served_model(local_stack):
    """Seed 000's way to reach one deployed model on an invoke route: x-deployed-model-id."""
    import openai

    c = openai.OpenAI(base_url=local_stack.url + "/invoke/v1", api_key="unused", max_retries=0, timeout=30,
                      default_headers={"x-deployed-model-id": "challenger", "x-user-id": "deployed-id-check"})
    for i in range(20):
        r = c.chat.completions.create(model="food-review", messages=[{"role": "user", "content": f"d{i}"}], max_tokens=2)
        assert r.model == "food-review"
    rows = local_stack.access_log(lambda r: r["user"] == "deployed-id-check", 20)
    assert {r["model"] for r in rows} == {"food-review-v2"}
    assert {r["upstream_path"] for r in rows} == {"/v1/chat/completions"}
