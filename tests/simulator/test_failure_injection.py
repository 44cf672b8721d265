"""Failure injection: error rate, stalls, crashes, and runtime control via /sim/control."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import pytest

from .conftest import MODEL, next_host

BODY = {"model": MODEL, "prompt": "hello", "max_tokens": 3}


def test_failure_rate_one_fails_every_request_with_vllm_error_shape(make_sim):
    s = make_sim(failure_rate=1.0)
    with httpx.Client(base_url=s.url) as c:
        for _ in range(10):
            r = c.post("/v1/completions", json=BODY)
            assert r.status_code in (500, 503)
            err = r.json()["error"]
            assert err["code"] == r.status_code and err["type"] and err["message"]
            assert r.headers["x-inference-pod"]
        assert c.get("/health").status_code == 200  # only inference requests fail
        assert c.get("/sim/state").json()["injected_failures"] == 10


def test_failure_rate_fraction_is_respected(make_sim):
    s = make_sim(failure_rate=0.3, seed=1)
    with httpx.Client(base_url=s.url) as c:
        codes = [c.post("/v1/completions", json=BODY).status_code for _ in range(200)]
    fails = sum(code != 200 for code in codes)
    assert 35 <= fails <= 85


def test_failure_types_select_status(make_sim):
    s = make_sim(failure_rate=1.0, failure_types=["rate_limit"])
    r = httpx.post(s.url + "/v1/chat/completions", json={"model": MODEL, "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 429 and r.json()["error"]["type"] == "RateLimitError"


def test_control_sets_failure_rate_mid_run(make_sim):
    s = make_sim()
    with httpx.Client(base_url=s.url) as c:
        assert c.post("/v1/completions", json=BODY).status_code == 200
        assert c.post("/sim/control", json={"failure_rate": 1.0}).json()["failure_rate"] == 1.0
        assert c.post("/v1/completions", json=BODY).status_code in (500, 503)
        c.post("/sim/control", json={"failure_rate": 0.0})
        assert c.post("/v1/completions", json=BODY).status_code == 200


def test_stall_now_freezes_generation_but_not_metrics(make_sim):
    s = make_sim()
    with httpx.Client(base_url=s.url, timeout=10) as c:
        t = time.perf_counter()
        c.post("/sim/control", json={"stall_now": True, "stall_seconds": 1.0})
        assert c.get("/sim/state").json()["stalled"] is True
        assert c.get("/metrics").status_code == 200
        assert time.perf_counter() - t < 0.7
        r = c.post("/v1/completions", json=BODY)
        assert r.status_code == 200 and time.perf_counter() - t >= 0.95


def test_unstall_resumes_immediately(make_sim):
    s = make_sim()
    with httpx.Client(base_url=s.url, timeout=10) as c:
        c.post("/sim/control", json={"stall_now": True, "stall_seconds": 30})
        t = time.perf_counter()
        import threading
        threading.Timer(0.2, lambda: httpx.post(s.url + "/sim/control", json={"unstall": True})).start()
        assert c.post("/v1/completions", json=BODY).status_code == 200
        assert 0.15 < time.perf_counter() - t < 5


def test_stall_after_n_requests(make_sim):
    s = make_sim(stall_after=2, stall_seconds=1.0)
    with httpx.Client(base_url=s.url, timeout=10) as c:
        for _ in range(2):
            t = time.perf_counter()
            c.post("/v1/completions", json=BODY)
            assert time.perf_counter() - t < 0.6
        assert c.get("/sim/state").json()["stalled"] is False
        t = time.perf_counter()
        c.post("/v1/completions", json=BODY)
        assert time.perf_counter() - t >= 0.95


def test_crash_after_n_requests_drops_the_replica(make_sim):
    s = make_sim(crash_after=2)
    with httpx.Client(base_url=s.url, timeout=5) as c:
        assert c.post("/v1/completions", json=BODY).status_code == 200
        assert c.post("/v1/completions", json=BODY).status_code == 200
        with pytest.raises(httpx.TransportError):
            c.post("/v1/completions", json=BODY)
    with pytest.raises(httpx.ConnectError):
        httpx.get(s.url + "/health", timeout=2)


def test_crash_now_aborts_in_flight_streams(make_sim):
    s = make_sim(time_scale=0.1)
    with httpx.Client(base_url=s.url, timeout=5) as c:
        with pytest.raises(httpx.TransportError):
            with c.stream("POST", "/v1/completions", json={**BODY, "max_tokens": 2000, "stream": True,
                                                           "ignore_eos": True}) as r:
                for i, _ in enumerate(r.iter_lines()):
                    if i == 2:
                        httpx.post(s.url + "/sim/control", json={"crash_now": True})
    with pytest.raises(httpx.ConnectError):
        httpx.get(s.url + "/health", timeout=2)


def _spawn(*args: str) -> tuple[subprocess.Popen, str]:
    host = next_host()
    port = 18000 + os.getpid() % 1000
    cmd = [sys.executable, "-m", "vllm_simulator.main", "--host", host, "--port", str(port), *args]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://{host}:{port}"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/version", timeout=0.5)
            return p, url
        except httpx.TransportError:
            if p.poll() is not None:
                raise AssertionError(p.stderr.read())
            time.sleep(0.05)
    p.kill()
    raise AssertionError("simulator did not start")


def test_cli_crash_after_exits_process_abruptly():
    p, url = _spawn("--crash-after", "1", "--time-scale", "0.01", "--tensor-parallel-size", "1",
                    "--enable-lora", "--max-lora-rank", "64", "--gpu-memory-utilization", "0.9",
                    "--enable-prefix-caching", "--max-model-len", "8192", "--dtype", "bfloat16")
    try:
        assert httpx.post(url + "/v1/completions", json=BODY, timeout=5).status_code == 200
        with pytest.raises(httpx.TransportError):
            httpx.post(url + "/v1/completions", json=BODY, timeout=5)
        assert p.wait(5) == 1
        assert "--dtype" in p.stderr.read()  # unknown vLLM flags are reported, not fatal
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
