"""KV pressure on real vLLM: the `small` server has 24 KV blocks (3072 tokens). Five long requests
sent to it directly, each sent again when it ends, fill its cache until vLLM preempts or queues;
the picker reads the real `vllm:kv_cache_usage_perc` and sends new requests to `roomy`, and its
saturation detector reports the pool as the real pages say."""

from __future__ import annotations

import re
import time

from ..load import Streams, gauge, page, wait_idle, wait_pages

PRESSURE = 0.75
STILL_LOADED = 0.3
"""Under the kept load the cache swings between ~20% and ~87% used (preemptions free a victim's
blocks, restarted requests start small): each probe waits until it is at least this full and the
picker has scraped since; roomy's stays near 0."""


def saturation(fams) -> float:
    """The picker's utilisation rule: max(waiting / 5, kv / 0.8) (picker/README, reference EPP)."""
    return max(gauge(fams, "vllm:num_requests_waiting") / 5, gauge(fams, "vllm:kv_cache_usage_perc") / 0.8)


def test_kv_pressure_moves_traffic_to_the_roomy_server(servers, gateway):
    gw = gateway(scorers=[{"type": "kv-cache-utilization-scorer", "weight": 1}])
    roomy, small = servers.roomy, servers.small
    wait_idle(servers.all)
    preempted_before = gauge(page(small), "vllm:num_preemptions_total")
    load = Streams(small.url)
    try:
        for i, length in enumerate((620, 670, 720, 770, 800)):   # each sent again when it ends; lengths
            load.keep("tiny", f"fill the cache {i} " + "block " * 200, length)   # differ so they never all restart at once
        t_state = time.monotonic()
        wait_pages([small], f"small server's KV cache at least {PRESSURE:.0%} used, requests preempted or queued",
                   lambda ps: gauge(ps[0], "vllm:kv_cache_usage_perc") >= PRESSURE
                   and (gauge(ps[0], "vllm:num_preemptions_total") > preempted_before
                        or gauge(ps[0], "vllm:num_requests_waiting") > 0), timeout_s=240)
        gw.wait_scraped_since(t_state, 0.05)
        for i in range(5):
            wait_pages([small], f"small's KV cache at least {STILL_LOADED:.0%} used before probe {i}",
                       lambda ps: gauge(ps[0], "vllm:kv_cache_usage_perc") >= STILL_LOADED, timeout_s=60)
            gw.wait_scraped_since(time.monotonic(), 0.05)
            r = gw.post("/v1/completions", {"model": "tiny", "prompt": f"probe {i}", "max_tokens": 1})
            assert r.status_code == 200, r.text
            assert gw.served(r) == roomy.key, f"probe {i} went to the server whose KV cache is full"
        (small_page,) = wait_pages([small], f"small's KV cache at least {STILL_LOADED:.0%} used after the probes",
                                   lambda ps: gauge(ps[0], "vllm:kv_cache_usage_perc") >= STILL_LOADED, timeout_s=60)
        # The picker's saturation detector reads the same pages (stale pages would count as 1.0).
        reported = float(re.search(r"^picker_pool_saturation (\S+)$", gw.picker_metrics(), re.M).group(1))
        assert reported >= saturation(small_page) / 2 - 0.05, (reported, saturation(small_page))
    finally:
        load.stop()
    assert load.errors == []
