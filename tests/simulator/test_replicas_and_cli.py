"""Several replicas in one process (embedded and via the CLI), CLI flag handling, KV sizing."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import httpx

from vllm_simulator import SimConfig, start_in_thread
from vllm_simulator.config import default_num_gpu_blocks
from vllm_simulator.main import configs_from_args

from .conftest import MODEL, next_host


def test_start_in_thread_runs_several_replicas_with_own_pod_names_and_state():
    cfgs = [SimConfig(host=next_host(), port=0, pod_name=f"pod-{i}", time_scale=0.01) for i in range(3)]
    with start_in_thread(cfgs) as h:
        assert len(h.urls) == 3
        for i, url in enumerate(h.urls):
            r = httpx.post(url + "/v1/completions", json={"model": MODEL, "prompt": "x" * (i + 1), "max_tokens": 2})
            assert r.headers["x-inference-pod"] == f"pod-{i}"
        assert [h.state(i)["request_success"]["stop"] + h.state(i)["request_success"]["length"]
                for i in range(3)] == [1, 1, 1]


def test_cli_listen_runs_multiple_replicas_in_one_process(tmp_path):
    hosts = [next_host() for _ in range(3)]
    port = 18500 + (hash(tuple(hosts)) % 400)
    rf = tmp_path / "replicas.json"
    rf.write_text(json.dumps([{"host": hosts[2], "port": port, "pod_name": "from-file", "max_loras": 3}]))
    cmd = [sys.executable, "-m", "vllm_simulator.main", "--time-scale", "0.01",
           "--listen", f"{hosts[0]}:{port}:pod-a", "--listen", f"{hosts[1]}:{port}:pod-b",
           "--replicas-file", str(rf), "--lora-modules", "x=/x"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        urls = [f"http://{h}:{port}" for h in hosts]
        deadline = time.monotonic() + 15
        while True:
            try:
                for u in urls:
                    httpx.get(u + "/health", timeout=0.5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and p.poll() is None, p.stderr.read() if p.poll() else ""
                time.sleep(0.05)
        pods = [httpx.get(u + "/health").headers["x-inference-pod"] for u in urls]
        assert pods == ["pod-a", "pod-b", "from-file"]
        # lora_requests_info has its first sample after the first request (as real vLLM)
        httpx.post(urls[2] + "/v1/completions", json={"model": "x", "prompt": "q", "max_tokens": 1}, timeout=10)
        assert 'max_lora="3"' in httpx.get(urls[2] + "/metrics").text
        assert [m["id"] for m in httpx.get(urls[0] + "/v1/models").json()["data"]] == [MODEL, "x"]
    finally:
        p.terminate()
        p.wait(5)


def test_cli_accepts_vllm_serve_style_args():
    [c] = configs_from_args(["serve", "meta-llama/Llama-3.1-8B-Instruct", "--port", "9000",
                             "--tensor-parallel-size", "2", "--enable-lora", "--max-loras", "4",
                             "--max-cpu-loras", "12", "--max-lora-rank", "64", "--gpu-memory-utilization", "0.85",
                             "--max-model-len", "32768", "--enable-prefix-caching", "--swap-space", "4",
                             "--lora-modules", '{"name": "j", "path": "/j"}', "k=/k",
                             "--served-model-name", "llama", "base"])
    assert c.model == MODEL and c.port == 9000 and c.tensor_parallel_size == 2
    assert c.max_loras == 4 and c.max_cpu_loras == 12 and c.max_model_len == 32768
    assert c.lora_modules == [("j", "/j"), ("k", "/k")]
    assert c.served_model_name == ["llama", "base"]
    assert c.num_gpu_blocks == default_num_gpu_blocks(0.85, 16, 2)


def test_default_kv_capacity_matches_h100_llama_8b_estimate():
    blocks = default_num_gpu_blocks()
    tokens = blocks * 16
    assert 420_000 < tokens < 480_000  # ~56 GB free / 128 KiB per token
    assert default_num_gpu_blocks(0.9, 16, 2) > 2 * blocks  # TP=2: half the weights per GPU


def test_cli_host_port_plus_listen_runs_both_and_bool_flag_values():
    cs = configs_from_args(["--model", MODEL, "--enable-lora=true", "--enable-prefix-caching=false",
                            "--host", "127.0.1.9", "--port", "8000", "--pod-name", "p",
                            "--listen", "127.0.1.9:8001:p"])
    assert [(c.host, c.port, c.pod_name) for c in cs] == [("127.0.1.9", 8000, "p"), ("127.0.1.9", 8001, "p")]
    assert not cs[0].enable_prefix_caching


def test_failure_injection_rate_percent_alias():
    [c] = configs_from_args(["--failure-injection-rate", "25"])
    assert c.failure_rate == 0.25


def test_crashing_one_embedded_replica_leaves_the_others_serving():
    cfgs = [SimConfig(host=next_host(), port=0, pod_name=f"c{i}", time_scale=0.01) for i in range(2)]
    with start_in_thread(cfgs) as h:
        a, b = h.urls
        assert httpx.post(a + "/sim/control", json={"crash_now": True}).status_code == 200
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                httpx.get(a + "/health", timeout=0.5)
                time.sleep(0.02)
            except httpx.ConnectError:
                break
        else:
            raise AssertionError("crashed replica still accepts connections")
        r = httpx.post(b + "/v1/completions", json={"model": MODEL, "prompt": "x", "max_tokens": 2})
        assert r.status_code == 200 and r.headers["x-inference-pod"] == "c1"


def test_control_time_scale_and_prefix_cache_reset():
    with start_in_thread(SimConfig(host=next_host(), port=0, time_scale=0.01)) as h, httpx.Client(base_url=h.url) as c:
        body = {"model": MODEL, "prompt": "y" * 400, "max_tokens": 1}
        c.post("/v1/completions", json=body)
        assert c.post("/v1/completions", json=body).json()["usage"]["prompt_tokens_details"]["cached_tokens"] == 96
        assert c.post("/sim/control", json={"reset_prefix_cache": True, "time_scale": 0.02}).json()["time_scale"] == 0.02
        assert c.post("/v1/completions", json=body).json()["usage"]["prompt_tokens_details"]["cached_tokens"] == 0
        assert h.state()["kv_blocks_cached"] == 6  # re-registered by the last request
