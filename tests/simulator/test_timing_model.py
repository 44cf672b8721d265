"""Properties of the continuous-batching timing model, observed over HTTP."""

from __future__ import annotations

import asyncio
import random
import threading
import time

import httpx

from .conftest import MODEL


_C = httpx.Client(timeout=20)  # one pooled client: creating one costs ~40 ms


def unique_text(n_tokens: int, seed: int) -> str:
    rnd = random.Random(seed)
    return "".join(rnd.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(4 * n_tokens))


def ttft(url: str, prompt: str, model: str = MODEL, max_tokens: int = 2) -> tuple[float, dict]:
    """Seconds to the first streamed token, and the final usage."""
    body = {"model": model, "prompt": prompt, "max_tokens": max_tokens, "stream": True, "ignore_eos": True,
            "stream_options": {"include_usage": True}}
    t0 = time.perf_counter()
    first = None
    usage = None
    with _C.stream("POST", url + "/v1/completions", json=body) as r:
        for line in r.iter_lines():
            if line.startswith("data: {") and first is None:
                first = time.perf_counter() - t0
            if '"usage"' in line:
                import json
                usage = json.loads(line[6:])["usage"]
    return first, usage


def state(url: str, client: httpx.Client | None = None) -> dict:
    return (client or _C).get(url + "/sim/state").json()


def test_ttft_grows_with_uncached_prompt_length(make_sim):
    s = make_sim(time_scale=0.3)
    # min of two fresh prompts each: filters scheduling hiccups of a busy machine
    short = min(ttft(s.url, unique_text(16, i))[0] for i in (1, 2))
    mid = min(ttft(s.url, unique_text(4000, i))[0] for i in (3, 4))
    long = min(ttft(s.url, unique_text(16000, i))[0] for i in (5, 6))
    # model: 16 tok ~8.5 ms, 4k ~136 ms, 16k (2 chunks of <=8192) ~620 ms simulated; x0.3 wall
    assert short < mid < long
    assert long - short > 0.12
    assert 0.5 * 0.3 * 0.62 < long < 5 * 0.3 * 0.62


def test_prefix_cache_hit_cuts_ttft_and_reports_cached_tokens(make_sim):
    s = make_sim(time_scale=0.5)
    prompt = unique_text(8000, 7)
    cold, u1 = ttft(s.url, prompt)
    warm, u2 = ttft(s.url, prompt)
    warm = min(warm, ttft(s.url, prompt)[0])
    assert u1["prompt_tokens_details"]["cached_tokens"] == 0
    assert u2["prompt_tokens_details"]["cached_tokens"] == (8000 - 1) // 16 * 16
    assert warm < cold / 2  # ~4 ms vs ~140 ms simulated x0.5
    # a prompt sharing only the first half hits only that half
    half = prompt[:4 * 4000] + unique_text(4000, 8)
    _, u3 = ttft(s.url, half)
    assert u3["prompt_tokens_details"]["cached_tokens"] == 4000 // 16 * 16
    st = state(s.url)
    assert st["prefix_cache_hits"] == 2 * u2["prompt_tokens_details"]["cached_tokens"] + 4000
    assert st["prefix_cache_queries"] == 4 * 8000


def test_prefix_match_oracle_agrees_with_served_cached_tokens(make_sim):
    s = make_sim()
    prompt = unique_text(1000, 21)
    assert _C.post(s.url + "/sim/prefix_match", json={"prompt": prompt}).json()["cached_tokens"] == 0
    ttft(s.url, prompt)
    oracle = _C.post(s.url + "/sim/prefix_match", json={"prompt": prompt}).json()
    _, u = ttft(s.url, prompt)
    assert oracle["cached_tokens"] == u["prompt_tokens_details"]["cached_tokens"] == (1000 - 1) // 16 * 16
    assert oracle["blocks_total"] == 1000 // 16


def test_prefix_cache_is_keyed_by_lora_adapter(make_sim):
    s = make_sim(lora_modules=[("ad", "/ad")])
    prompt = unique_text(200, 9)
    ttft(s.url, prompt)
    _, u = ttft(s.url, prompt, model="ad")
    assert u["prompt_tokens_details"]["cached_tokens"] == 0
    _, u = ttft(s.url, prompt, model="ad")
    assert u["prompt_tokens_details"]["cached_tokens"] == 192


def test_prefix_cache_disabled(make_sim):
    s = make_sim(enable_prefix_caching=False)
    prompt = unique_text(200, 10)
    ttft(s.url, prompt)
    _, u = ttft(s.url, prompt)
    assert u["prompt_tokens_details"]["cached_tokens"] == 0


async def _concurrent(url: str, n: int, max_tokens: int, model: str = MODEL, prompt_tokens: int = 8):
    limits = httpx.Limits(max_connections=n + 4)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as c:
        async def one(i):
            r = await c.post("/v1/completions", json={"model": model, "prompt": unique_text(prompt_tokens, i),
                                                      "max_tokens": max_tokens, "ignore_eos": True})
            return r.json()
        return await asyncio.gather(*(one(i) for i in range(n)))


def _itl_mean(url: str) -> float:
    text = _C.get(url + "/metrics").text
    vals = {}
    for line in text.splitlines():
        if line.startswith("vllm:inter_token_latency_seconds_sum") or \
                line.startswith("vllm:inter_token_latency_seconds_count"):
            vals[line.split("{")[0]] = float(line.rsplit(" ", 1)[1])
    return vals["vllm:inter_token_latency_seconds_sum"] / vals["vllm:inter_token_latency_seconds_count"]


def test_decode_time_per_token_grows_with_batch_size(make_sim):
    one = make_sim(time_scale=0.2)
    asyncio.run(_concurrent(one.url, 1, 60))
    many = make_sim(time_scale=0.2)
    res = asyncio.run(_concurrent(many.url, 128, 60))
    assert all(r["usage"]["completion_tokens"] == 60 for r in res)
    itl1, itl128 = _itl_mean(one.url), _itl_mean(many.url)
    # model: 8.1 ms at batch 1 vs ~21 ms at batch 128 (x0.2 wall)
    assert itl128 > 1.8 * itl1, (itl1, itl128)
    assert 0.5 * 0.2 * 0.0081 < itl1 < 4 * 0.2 * 0.0081


def test_time_scale_scales_latency(make_sim):
    def e2e(url):
        t = time.perf_counter()
        _C.post(url + "/v1/completions", json={"model": MODEL, "prompt": "abcd", "max_tokens": 60,
                                                  "ignore_eos": True}, timeout=20)
        return time.perf_counter() - t
    fast, slow = make_sim(time_scale=0.05), make_sim(time_scale=0.25)
    tf = min(e2e(fast.url) for _ in range(3))
    ts = min(e2e(slow.url) for _ in range(2))
    # 60 steps of ~8.1 ms simulated = 0.49 s -> 24 ms vs 122 ms
    assert 2.5 < ts / tf < 7.5, (tf, ts)
    assert 0.7 * 0.25 * 0.49 < ts < 2.5 * 0.25 * 0.49


def test_chunked_prefill_respects_token_budget(make_sim):
    s = make_sim(max_num_batched_tokens=512)
    ttft(s.url, unique_text(2000, 11), max_tokens=1)
    st = state(s.url)
    assert st["steps"] == 4  # ceil(2000 / 512) prefill steps, last one samples the only token
    assert st["last_step"]["prefill_tokens"] == 2000 - 3 * 512


def test_max_num_seqs_caps_running_requests(make_sim):
    s = make_sim(max_num_seqs=3, time_scale=0.1)
    _C.post(s.url + "/sim/control", json={"stall_now": True, "stall_seconds": 30})
    peak = {"running": 0}
    done = threading.Event()
    box = {}
    t = threading.Thread(target=lambda: box.update(res=asyncio.run(_concurrent(s.url, 8, 100))))
    t.start()
    deadline = time.monotonic() + 10
    while state(s.url)["waiting"] < 8:      # stalled engine: everything queues
        assert time.monotonic() < deadline
        time.sleep(0.01)
    pc = httpx.Client(timeout=5)

    def poll():
        while not done.is_set():
            peak["running"] = max(peak["running"], state(s.url, pc)["running"])
            time.sleep(0.003)
    p = threading.Thread(target=poll)
    p.start()
    _C.post(s.url + "/sim/control", json={"unstall": True})
    t.join()
    done.set()
    p.join()
    assert all(r["usage"]["completion_tokens"] == 100 for r in box["res"])
    assert peak["running"] == 3


def test_kv_capacity_causes_waiting_and_preemption(make_sim):
    # 20 blocks x 16 = 320 tokens of KV; each request grows to 64 + 150 tokens (14 blocks)
    s = make_sim(num_gpu_blocks=20, time_scale=0.1)
    peak = {"waiting": 0, "kv": 0.0}
    done = threading.Event()

    pc = httpx.Client(timeout=5)

    def poll():
        while not done.is_set():
            st = state(s.url, pc)
            peak["waiting"] = max(peak["waiting"], st["waiting"])
            peak["kv"] = max(peak["kv"], st["kv_cache_usage"])
            time.sleep(0.005)
    t = threading.Thread(target=poll)
    t.start()
    res = asyncio.run(_concurrent(s.url, 4, 150, prompt_tokens=64))
    done.set()
    t.join()
    assert all(r["usage"]["completion_tokens"] == 150 for r in res)
    st = state(s.url)
    assert st["num_preemptions"] > 0
    assert peak["waiting"] >= 1 and peak["kv"] >= 0.8
    assert st["kv_blocks_used"] == 0 and st["running"] == 0
    metrics = httpx.get(s.url + "/metrics").text
    assert f'vllm:num_preemptions_total{{engine="0",model_name="{MODEL}"}} {float(st["num_preemptions"])}' in metrics


def test_request_larger_than_kv_cache_is_rejected(make_sim):
    s = make_sim(num_gpu_blocks=4)
    r = httpx.post(s.url + "/v1/completions", json={"model": MODEL, "prompt": "x" * 400, "max_tokens": 10})
    assert r.status_code == 400


def _lora_run(url: str, adapters: list[str], per: int, max_tokens: int = 120):
    seen_running: set[str] = set()
    seen_waiting: set[str] = set()
    done = threading.Event()

    pc = httpx.Client(timeout=5)

    def poll():
        while not done.is_set():
            st = state(url, pc)
            seen_running.add(st["running_lora_adapters"])
            if st["waiting_lora_adapters"]:
                seen_waiting.add(st["waiting_lora_adapters"])
            time.sleep(0.003)
    t = threading.Thread(target=poll)
    t.start()

    async def go():
        async with httpx.AsyncClient(base_url=url, timeout=30) as c:
            async def one(m, i):
                r = await c.post("/v1/completions", json={"model": m, "prompt": unique_text(8, i),
                                                          "max_tokens": max_tokens, "ignore_eos": True})
                return r.json()
            return await asyncio.gather(*(one(m, i) for i in range(per) for m in adapters))
    res = asyncio.run(go())
    done.set()
    t.join()
    return res, seen_running, seen_waiting


def test_max_loras_limits_adapters_per_batch(make_sim):
    s = make_sim(lora_modules=[("a", "/a"), ("b", "/b")], max_loras=1, time_scale=0.1)
    res, running, waiting = _lora_run(s.url, ["a", "b"], 3)
    assert all(r["usage"]["completion_tokens"] == 120 for r in res)
    assert "a,b" not in running and "b,a" not in running
    assert {"a", "b"} <= running
    assert waiting & {"a", "b"}
    assert state(s.url)["lora_loads"] >= 2


def test_two_lora_slots_run_two_adapters_together(make_sim):
    s = make_sim(lora_modules=[("a", "/a"), ("b", "/b")], max_loras=2, time_scale=0.1)
    _, running, _ = _lora_run(s.url, ["a", "b"], 3)
    assert "a,b" in running or "b,a" in running


def test_lora_load_cost_depends_on_cpu_cache(make_sim):
    def run(sim, model):
        t = time.perf_counter()
        assert _C.post(sim.url + "/v1/completions", json={"model": model, "prompt": "x", "max_tokens": 1}).status_code == 200
        return time.perf_counter() - t, sim.state()["last_step"]["lora_load_s"]

    kw = dict(lora_modules=[("a", "/a"), ("b", "/b")], max_loras=1, time_scale=1.0,
              lora_load_disk_s=0.25, lora_load_gpu_s=0.005)
    small = make_sim(max_cpu_loras=1, **kw)   # CPU cache holds one adapter: b (loaded last)
    wall, load = run(small, "a")
    assert load == 0.25 and wall > 0.24       # not in the CPU cache: loaded from disk
    assert run(small, "a")[1] == 0.0          # already in the GPU slot
    wall, load = run(small, "b")
    assert load == 0.25 and wall > 0.24       # evicted from the CPU cache by a
    big = make_sim(max_cpu_loras=2, **kw)
    assert run(big, "a")[1] == 0.005 and run(big, "b")[1] == 0.005   # CPU -> GPU slot only
    st = state(big.url)
    assert st["cpu_lora_cache"] == ["a", "b"] and st["gpu_lora_slots"] == ["b"] and st["lora_loads"] == 2
