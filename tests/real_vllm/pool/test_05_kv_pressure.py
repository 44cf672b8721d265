"""KV pressure on real vLLM: the `small` server has 24 KV blocks (3072 tokens). Five long requests
sent to it directly, each sent again when it ends, fill its cache until vLLM preempts or queues;
the picker reads the real `vllm:kv_cache_usage_perc` and sends new requests to `roomy`, and its
saturation detector reports the pool as the real pages say."""

from __future__ import annotations

import re
import threading
import time

from ... import exposition
from ..load import Streams, gauge, page, wait_idle, wait_pages

PRESSURE = 0.75
STILL_LOADED = 0.3
"""Under the kept load the cache swings between 0% and ~96% used (preemptions free a victim's
blocks, restarted requests start small; for up to 30 s at a time vLLM's page showed nothing
running while the five requests were outstanding): a probe counts when the cache is at least this
full before it, after the picker's next scrape, and after it; roomy's stays near 0."""
PROBE_ATTEMPTS = 20


def saturation(fams) -> float:
    """The picker's utilisation rule: max(waiting / 5, kv / 0.8) (picker/README, reference EPP)."""
    return max(gauge(fams, "vllm:num_requests_waiting") / 5, gauge(fams, "vllm:kv_cache_usage_perc") / 0.8)


def reading_among_pages(gw, server) -> tuple[float, list]:
    """The picker's pool saturation, read after its next scrape, and `server`'s pages fetched back to
    back from before that scrape until after the reading."""
    raw: list[bytes] = []
    done, fetched_after = threading.Event(), threading.Event()

    def fetch() -> None:
        while True:
            raw.append(server.metrics())   # raises (ends the thread) on a timeout: no reading then
            if done.is_set():
                fetched_after.set()
                return

    fetcher = threading.Thread(target=fetch, daemon=True)
    fetcher.start()
    while not raw and fetcher.is_alive():
        time.sleep(0.005)
    gw.wait_scraped_since(time.monotonic(), 0.05)   # a scrape after the first page
    reported = float(re.search(r"^picker_pool_saturation (\S+)$", gw.picker_metrics(), re.M).group(1))
    done.set()
    fetcher.join(30)
    return reported, [exposition.parse(r.decode()) for r in raw] if fetched_after.is_set() else []


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
        seen = 0
        for i in range(PROBE_ATTEMPTS):
            try:
                wait_pages([small], f"small's KV cache at least {STILL_LOADED:.0%} used before probe {i}",
                           lambda ps: gauge(ps[0], "vllm:kv_cache_usage_perc") >= STILL_LOADED, timeout_s=30)
            except TimeoutError:
                continue          # the held requests were between restarts or preempted for a while
            loaded = lambda: gauge(page(small), "vllm:kv_cache_usage_perc") >= STILL_LOADED  # noqa: E731
            r, held = gw.probe(loaded, {"model": "tiny", "prompt": f"probe {i}", "max_tokens": 1})
            if held is not True:
                continue          # the cache emptied around this probe: the decision may have seen that
            assert gw.served(r) == roomy.key, f"probe {i} went to the server whose KV cache is >= {STILL_LOADED:.0%} used"
            seen += 1
            if seen == 3:
                break
        assert seen == 3, f"only {seen} of {PROBE_ATTEMPTS} probes saw small's cache >= {STILL_LOADED:.0%} used before and after"
        # The picker's saturation detector reads the same pages (stale pages would count as 1.0): its
        # figure against small's pages fetched back to back from before its scrape until after the
        # reading (the cache can swing by half within 100 ms, so two pages around it are not enough).
        for _ in range(PROBE_ATTEMPTS):
            reported, pages = reading_among_pages(gw, small)
            if pages and min(gauge(p, "vllm:kv_cache_usage_perc") for p in pages) >= STILL_LOADED:
                floor = min(saturation(p) for p in pages)
                assert reported >= floor / 2 - 0.05, (reported, floor, len(pages))
                break
        else:
            raise AssertionError(f"small's cache was never >= {STILL_LOADED:.0%} used around a saturation reading")
    finally:
        load.stop()
    assert load.errors == []
