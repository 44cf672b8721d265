"""The picker's parser on live real-vLLM pages: right after start, idle and busy; and the live pages
still have the shape of the committed recordings (else re-record: tests/real_vllm/record_metrics.py)."""

from __future__ import annotations

from endpoint_picker.scrape import parse_metrics

from ... import exposition
from .conftest import SMALL_KV_BLOCKS
from ..load import Streams, gauge, lora_lists, page, wait_idle, wait_raw_pages


def assert_parsed_like_full_parser(raw: bytes) -> None:
    fams = exposition.parse(raw.decode())
    m = parse_metrics(raw)
    assert m.waiting == gauge(fams, "vllm:num_requests_waiting")
    assert m.running == gauge(fams, "vllm:num_requests_running")
    assert m.kv_usage == gauge(fams, "vllm:kv_cache_usage_perc")
    cache = exposition.values(fams, "vllm:cache_config_info")[0].labels
    assert (m.block_size, m.num_gpu_blocks) == (int(cache["block_size"]), int(cache["num_gpu_blocks"]))
    assert m.lora_enabled
    lists = lora_lists(fams)
    assert (m.active_loras, m.waiting_loras, m.max_lora) == (lists or (frozenset(), frozenset(), 0))


def test_right_after_start(servers):
    for name, raw in servers.start_raw.items():
        assert_parsed_like_full_parser(raw)
        m = parse_metrics(raw)
        assert (m.running, m.waiting, m.kv_usage) == (0, 0, 0)
        # LoRA is on but nothing ran: no lora_requests_info sample, every slot free.
        assert lora_lists(servers.start_pages[name]) is None and m.lora_enabled and m.max_lora == 0
        assert m.block_size == 128
    assert parse_metrics(servers.start_raw["small"]).num_gpu_blocks == SMALL_KV_BLOCKS
    assert parse_metrics(servers.start_raw["roomy"]).num_gpu_blocks > 1000


def test_busy_then_idle(servers):
    s = servers.roomy
    wait_idle([s])
    load = Streams(s.url)
    try:
        for i in range(4):
            for model in ("tiny", "tiny-lora-a", "tiny-lora-b"):
                load.start(model, f"request {i} for {model}", 600)
        (raw,) = wait_raw_pages([s], "8 running, 4 waiting", lambda ps: gauge(ps[0], "vllm:num_requests_running") == 8
                                and gauge(ps[0], "vllm:num_requests_waiting") == 4)
        assert_parsed_like_full_parser(raw)
        m = parse_metrics(raw)
        assert (m.running, m.waiting) == (8, 4) and m.kv_usage > 0
        # Real vLLM: every adapter with a request in flight is in both lists, whatever is queued.
        assert m.active_loras == m.waiting_loras and m.active_loras <= {"tiny-lora-a", "tiny-lora-b"} and m.active_loras
    finally:
        load.stop()
    pages = wait_idle([s])
    raw = s.metrics()
    assert_parsed_like_full_parser(raw)
    m = parse_metrics(raw)
    assert (m.running, m.waiting, m.active_loras, m.max_lora) == (0, 0, frozenset(), 2)
    assert len(exposition.values(pages[0], "vllm:lora_requests_info")) > 1  # stale series stay on the page


def test_live_pages_have_the_recorded_shape(servers):
    """Families, types, label names and buckets as in tests/fixtures/vllm_metrics (same vLLM)."""
    wait_idle(servers.all)
    live = page(servers.roomy)
    recorded = exposition.parse_file("idle.prom")
    traffic_dependent = lambda name: name.startswith("http_")  # noqa: E731 - per-handler series
    assert exposition.shape_differences(recorded, live, skip=traffic_dependent, other_name="the live page") == []
