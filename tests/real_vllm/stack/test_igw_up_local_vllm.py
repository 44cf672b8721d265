"""`igw up --stack local-vllm`: the committed stack's rendered objects with real vLLM processes as
its model-server pods (the tiny model and adapters under the stack's names), through the real
Envoy and picker; `igw down` leaves no process behind. Runs after pool/ stopped its servers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

from ..conftest import TIMINGS, free_local_port, pick_addresses
from ..server import ROOT

STACK = "local-vllm"
BASE = "meta-llama/Llama-3.1-8B-Instruct"
POD_PORT = 8000  # the rendered Deployment's containerPort


def igw(*args: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "igw.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"})


@pytest.fixture(scope="module")
def stack(vllm_env, tmp_path_factory):
    state = tmp_path_factory.mktemp("igw-up-local-vllm")
    (base, _), _ = pick_addresses(n=2, first=10, port=POD_PORT)
    gw_port = free_local_port()
    t0 = time.monotonic()
    up = igw("up", "--stack", STACK, "--detach", "--state-dir", str(state), "--address-base", base,
             "--port", str(gw_port), timeout=1300)
    TIMINGS["stack: igw up --stack local-vllm (render + two vLLM start-ups)"] = time.monotonic() - t0
    try:
        assert up.returncode == 0, up.stdout[-4000:] + up.stderr[-4000:]
        yield {"url": f"http://127.0.0.1:{gw_port}", "out": up.stdout, "state": state}
    finally:
        down = igw("down", "--stack", STACK, "--state-dir", str(state), timeout=180)
        assert down.returncode == 0, down.stdout + down.stderr
        recorded = json.loads((state / "state.json").read_text()) if (state / "state.json").exists() else {}
        alive = [p["pid"] for p in (recorded.get("processes") or {}).values() if p.get("pid") and _alive(p["pid"])]
        assert alive == [], f"processes left after igw down: {alive}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def test_summary_states_the_substitution(stack):
    out = stack["out"]
    assert "2 x vllm-cpu (real vLLM, a few minutes)" in out
    assert "Substituted (igw-local:replicas: vllm-cpu): real vLLM, CPU build, serves a tiny model under the stack's names:" in out
    assert f"model {BASE} -> tiny Llama (tiny-model-" in out
    assert "adapter food-review -> tiny-lora-a" in out and "adapter food-review-v2 -> tiny-lora-b" in out
    assert "not applied on CPU: --tensor-parallel-size 1" in out


def test_the_stack_model_names_reach_real_vllm(stack):
    with httpx.Client(timeout=120) as raw:
        client = openai.OpenAI(base_url=stack["url"] + "/v1", api_key="unused", http_client=raw, max_retries=0)
        base = client.chat.completions.create(model=BASE, messages=[{"role": "user", "content": "hello"}], max_tokens=5,
                                              extra_body={"ignore_eos": True})
        assert base.model == BASE and base.usage.completion_tokens == 5
        # The 90/10 split picks food-review or food-review-v2 (tiny adapters); the client sees its own name.
        for i in range(4):
            r = client.completions.create(model="food-review", prompt=f"review {i}", max_tokens=4, extra_body={"ignore_eos": True})
            assert r.model == "food-review" and r.usage.completion_tokens == 4
        chunks = list(client.completions.create(model="food-review", prompt="stream", max_tokens=6, stream=True,
                                                stream_options={"include_usage": True}, extra_body={"ignore_eos": True}))
        assert chunks[-1].usage.completion_tokens == 6
        models = {m.id for m in client.models.list().data}
        assert {BASE, "food-review", "food-review-v2"} <= models


def test_access_log_names_the_served_pod_and_model(stack):
    log = stack["state"] / "logs" / "access.log"
    deadline = time.monotonic() + 10
    entries: list[dict] = []
    while time.monotonic() < deadline:
        entries = [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.exists() else []
        if any(e.get("model") in ("food-review", "food-review-v2") for e in entries):
            break
        time.sleep(0.2)
    served = [e for e in entries if str(e.get("status")) == "200" and e.get("path", "").startswith("/v1/")]
    assert served, entries[-5:]
    pods = json.loads((stack["state"] / "state.json").read_text())["processes"]
    addresses = {f"{p['address']}:{POD_PORT}" for p in pods.values() if p["kind"] == "vllm"}
    assert len(addresses) == 2 and {e["upstream"] for e in served} <= addresses
    # The served model after the split: the adapter vLLM ran, not the name the client sent.
    assert {e["model"] for e in served} & {"food-review", "food-review-v2"}
