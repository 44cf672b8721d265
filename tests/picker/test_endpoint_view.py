"""The picker's per-endpoint view on its own /metrics (picker_endpoint_*): what it last scraped from
each model server and the saturation it derives, read from the real picker process against fake
servers whose pages we set. tests/real_vllm/pool/test_05_kv_pressure.py reads the same view
against real vLLM."""

from __future__ import annotations

import time

from .. import exposition


view = exposition.series


def wait_scrapes_past(s, endpoint: str, count: float, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = s.picker_metrics()
        if view(text, "picker_endpoint_scrapes_total").get((endpoint,), 0) > count:
            return text
        assert time.monotonic() < deadline, f"{endpoint} not scraped again:\n{text}"
        time.sleep(0.05)


NEVER_STALE = {"saturation": {"metrics_staleness_ms": 600_000}}
"""A scrape delayed on a loaded machine must not turn a saturation this test reads exactly into 1."""


def test_the_view_is_what_each_page_said(stack):
    s = stack({"busy": {"waiting": 9, "running": 4, "kv": 0.5, "max_lora": 2, "running_loras": ["sql-lora"],
                        "waiting_loras": ["sql-lora", "chat-lora"]},
               "idle": {"max_lora": 2}}, config=NEVER_STALE)
    s.wait_fresh()
    busy, idle = (f"{p['address']}:{s.port}" for p in s.pods)
    text = s.picker_metrics()
    assert view(text, "picker_endpoint_queue_size") == {(busy,): 9, (idle,): 0}
    assert view(text, "picker_endpoint_running_requests") == {(busy,): 4, (idle,): 0}
    assert view(text, "picker_endpoint_kv_cache_usage") == {(busy,): 0.5, (idle,): 0}
    assert view(text, "picker_endpoint_max_lora") == {(busy,): 2, (idle,): 2}
    assert view(text, "picker_endpoint_lora_adapter") == {(busy, "sql-lora", "running"): 1,
                                                           (busy, "chat-lora", "waiting"): 1,
                                                           (busy, "sql-lora", "waiting"): 1}
    # max(9 / 5, 0.5 / 0.8) and 0; the pool's figure is their mean.
    assert view(text, "picker_endpoint_saturation") == {(busy,): 1.8, (idle,): 0}
    assert "picker_pool_saturation 0.9\n" in text

    # The page changes: the view follows, and the scrape counter says when (the first scrape
    # counted after the change may have fetched the old page; the one after it cannot).
    scrapes = view(text, "picker_endpoint_scrapes_total")[(busy,)]
    s.backends["busy"].state.waiting, s.backends["busy"].state.kv = 0, 0.72
    text = wait_scrapes_past(s, busy, scrapes + 1)
    assert view(text, "picker_endpoint_kv_cache_usage")[(busy,)] == 0.72
    assert view(text, "picker_endpoint_saturation")[(busy,)] == 0.9


def wait_saturation(s, endpoint: str, value: float, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while view(text := s.picker_metrics(), "picker_endpoint_saturation")[(endpoint,)] != value:
        assert time.monotonic() < deadline, f"{endpoint}'s saturation never {value}:\n{text}"
        time.sleep(0.05)
    return text


def test_a_server_whose_page_hangs_counts_as_saturated(stack):
    s = stack({"stuck": {"kv": 0.1}, "fine": {}}, config={"saturation": {"metrics_staleness_ms": 500}})
    s.wait_fresh()
    stuck = f"{s.pods[0]['address']}:{s.port}"
    wait_saturation(s, stuck, 0.125)   # 0.1 / 0.8 while fresh
    s.backends["stuck"].state.metrics_mode = "hang"
    text = wait_saturation(s, stuck, 1.0)
    # The stale view is kept (last values, counter frozen) but no longer trusted.
    assert view(text, "picker_endpoint_kv_cache_usage")[(stuck,)] == 0.1
    frozen = view(text, "picker_endpoint_scrapes_total")[(stuck,)]
    time.sleep(0.3)
    assert view(s.picker_metrics(), "picker_endpoint_scrapes_total")[(stuck,)] == frozen
