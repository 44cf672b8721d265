"""/metrics: vLLM's exact metric names, label shapes, bucket bounds, and live values."""

from __future__ import annotations

import time

import httpx

from vllm_simulator.metrics import E2E_BUCKETS, ITL_BUCKETS, TTFT_BUCKETS

from .. import exposition
from .conftest import MODEL


def parse(text: str):
    """-> (types {family: type}, samples [(name, labels dict, value)])."""
    fams = exposition.parse(text)
    return ({f.name: f.type for f in fams.values()},
            [(s.name, s.labels, s.value) for f in fams.values() for s in f.samples])


def one(samples, name, **match):
    found = [(lb, v) for n, lb, v in samples if n == name and all(lb.get(k) == x for k, x in match.items())]
    assert len(found) == 1, (name, match, found)
    return found[0]


def latest_lora(samples) -> dict:
    """vLLM keeps one lora_requests_info series per label combination; the newest is current."""
    series = [(v, lb) for n, lb, v in samples if n == "vllm:lora_requests_info"]
    return max(series, key=lambda x: x[0])[1]


def test_metric_families_names_and_types(sim):
    types, _ = parse(httpx.get(sim.url + "/metrics").text)
    expected = {
        "vllm:num_requests_running": "gauge", "vllm:num_requests_waiting": "gauge",
        "vllm:num_requests_waiting_by_reason": "gauge",
        "vllm:kv_cache_usage_perc": "gauge", "vllm:lora_requests_info": "gauge", "vllm:cache_config_info": "gauge",
        "vllm:prefix_cache_hits_total": "counter", "vllm:prefix_cache_queries_total": "counter",
        "vllm:prefix_cache_hits_created": "gauge",
        "vllm:prompt_tokens_total": "counter", "vllm:generation_tokens_total": "counter",
        "vllm:request_success_total": "counter", "vllm:num_preemptions_total": "counter",
        "vllm:time_to_first_token_seconds": "histogram", "vllm:inter_token_latency_seconds": "histogram",
        "vllm:request_time_per_output_token_seconds": "histogram", "vllm:e2e_request_latency_seconds": "histogram",
        "vllm:request_queue_time_seconds": "histogram",
    }
    assert {fam: types.get(fam) for fam in expected} == expected
    # Names real vLLM (0.10+) no longer exports: a page with them would hide broken queries.
    assert "vllm:gpu_cache_usage_perc" not in types and "vllm:time_per_output_token_seconds" not in types


def test_label_shapes_match_vllm(sim):
    r = httpx.get(sim.url + "/metrics")
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert '{engine="0",model_name="' in r.text  # label names in sorted order, as vLLM's multiprocess collector
    _, s = parse(r.text)
    lb, _ = one(s, "vllm:num_requests_running")
    assert lb == {"model_name": MODEL, "engine": "0"}  # vLLM v1: served name + engine index
    # The LoRA family is declared but, as on a real server, has no sample before the first request.
    assert "# TYPE vllm:lora_requests_info gauge" in r.text
    assert not [x for x in s if x[0] == "vllm:lora_requests_info"]
    lb, v = one(s, "vllm:cache_config_info")
    assert v == 1.0 and lb["block_size"] == "16" and int(lb["num_gpu_blocks"]) > 20000
    assert int(lb["kv_cache_size_tokens"]) == 16 * int(lb["num_gpu_blocks"])
    reasons = sorted(lb["finished_reason"] for n, lb, _ in s if n == "vllm:request_success_total")
    assert reasons == ["abort", "error", "length", "repetition", "stop"]
    httpx.post(sim.url + "/v1/completions", json={"model": MODEL, "prompt": "q", "max_tokens": 2})
    _, s = parse(httpx.get(sim.url + "/metrics").text)
    lb, v = one(s, "vllm:lora_requests_info")
    assert lb == {"max_lora": "2", "running_lora_adapters": "", "waiting_lora_adapters": ""}
    assert abs(v - time.time()) < 3600  # value is a wall-clock timestamp


def test_no_lora_family_without_lora(make_sim):
    s = make_sim(enable_lora=False)
    httpx.post(s.url + "/v1/completions", json={"model": MODEL, "prompt": "q", "max_tokens": 2})
    assert "vllm:lora_requests_info" not in httpx.get(s.url + "/metrics").text


def test_histogram_buckets_are_vllms(sim):
    _, s = parse(httpx.get(sim.url + "/metrics").text)
    for fam, bounds in (("vllm:time_to_first_token_seconds", TTFT_BUCKETS),
                        ("vllm:inter_token_latency_seconds", ITL_BUCKETS),
                        ("vllm:e2e_request_latency_seconds", E2E_BUCKETS)):
        les = [lb["le"] for n, lb, _ in s if n == fam + "_bucket"]
        assert les == [repr(float(b)) for b in bounds] + ["+Inf"], fam
        assert all(lb["model_name"] == MODEL for n, lb, _ in s if n.startswith(fam))
    assert TTFT_BUCKETS[:8] == (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1)
    assert E2E_BUCKETS[-1] == 7680.0 and ITL_BUCKETS[-1] == 80.0


def test_counters_and_histograms_follow_requests(sim, client):
    for _ in range(3):
        client.post("/v1/completions", json={"model": MODEL, "prompt": "abcdefgh" * 10, "max_tokens": 5,
                                             "ignore_eos": True})
    _, s = parse(client.get("/metrics").text)
    assert one(s, "vllm:prompt_tokens_total")[1] == 3 * 20
    assert one(s, "vllm:generation_tokens_total")[1] == 15
    assert one(s, "vllm:request_success_total", finished_reason="length")[1] == 3
    assert one(s, "vllm:time_to_first_token_seconds_count")[1] == 3
    assert one(s, "vllm:inter_token_latency_seconds_count")[1] == 12
    assert one(s, "vllm:e2e_request_latency_seconds_count")[1] == 3
    assert one(s, "vllm:request_queue_time_seconds_count")[1] == 3
    assert one(s, "vllm:time_to_first_token_seconds_bucket", le="+Inf")[1] == 3
    # 80 bytes = 20 tokens = 1 full block; repeats hit it ((20-1)//16 = 1 block)
    assert one(s, "vllm:prefix_cache_queries_total")[1] == 60
    assert one(s, "vllm:prefix_cache_hits_total")[1] == 2 * 16


def test_gauges_show_running_waiting_kv_and_lora_lists(make_sim):
    s = make_sim(max_num_seqs=1, time_scale=0.1, lora_modules=[("a", "/a"), ("b", "/b")], max_loras=1)
    import asyncio
    import threading

    async def fire():
        async with httpx.AsyncClient(base_url=s.url, timeout=20) as c:
            await asyncio.gather(*(c.post("/v1/completions", json={
                "model": m, "prompt": "x" * 64, "max_tokens": 300, "ignore_eos": True}) for m in ("a", "b", MODEL)))
    with httpx.Client(base_url=s.url, timeout=5) as c:
        c.post("/sim/control", json={"stall_now": True, "stall_seconds": 30})  # let all three queue
        t = threading.Thread(target=lambda: asyncio.run(fire()))
        t.start()
        deadline = time.monotonic() + 10
        while True:
            _, smp = parse(c.get("/metrics").text)
            if one(smp, "vllm:num_requests_waiting")[1] == 3:
                break
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert one(smp, "vllm:kv_cache_usage_perc")[1] == 0.0
        c.post("/sim/control", json={"unstall": True})
        seen = None
        while seen is None and time.monotonic() < deadline:
            _, smp = parse(c.get("/metrics").text)
            if one(smp, "vllm:num_requests_running")[1] == 1 and one(smp, "vllm:num_requests_waiting")[1] == 2 \
                    and latest_lora(smp)["running_lora_adapters"]:
                seen = smp
            time.sleep(0.005)
        t.join()
    assert seen is not None
    assert one(seen, "vllm:kv_cache_usage_perc")[1] > 0
    # As real vLLM: the adapter whose request is producing tokens is in both lists; the other
    # adapter's request has not started (not listed) and is held back by the LoRA budget.
    lb = latest_lora(seen)
    assert lb["running_lora_adapters"] == lb["waiting_lora_adapters"] in ("a", "b")
    waiting_by = {x[1]["reason"]: x[2] for x in seen if x[0] == "vllm:num_requests_waiting_by_reason"}
    assert waiting_by == {"capacity": 1.0, "deferred": 1.0}  # the base-model request / the other adapter


def test_lora_info_keeps_stale_series_and_newest_is_current(sim, client):
    client.post("/v1/completions", json={"model": "sql-lora", "prompt": "q", "max_tokens": 5, "ignore_eos": True})
    _, s = parse(client.get("/metrics").text)
    series = {(lb["running_lora_adapters"], lb["waiting_lora_adapters"]): v
              for n, lb, v in s if n == "vllm:lora_requests_info"}
    # One series while the request ran (in both lists), one set at its last step (empty).
    assert set(series) == {("sql-lora", "sql-lora"), ("", "")}
    assert series[("", "")] >= series[("sql-lora", "sql-lora")]
    assert latest_lora(s)["running_lora_adapters"] == ""


def test_metrics_scrape_is_cached_until_state_changes(sim, client):
    m, eng = sim.replica.metrics, sim.replica.engine
    a = sim.call(lambda: m.render(eng))
    assert sim.call(lambda: m.render(eng)) is a          # unchanged state: the cached bytes
    client.post("/v1/completions", json={"model": MODEL, "prompt": "x", "max_tokens": 1})
    b = sim.call(lambda: m.render(eng))
    assert b is not a and b"vllm:request_success_total" in b
    # an uncached render is well under a millisecond of work
    t = time.process_time()
    for _ in range(50):
        sim.call(lambda: (setattr(eng, "version", eng.version + 1), m.render(eng)))
    assert (time.process_time() - t) / 50 < 0.003
    t = time.perf_counter()
    for _ in range(50):
        assert client.get("/metrics").status_code == 200
    assert (time.perf_counter() - t) / 50 < 0.05
