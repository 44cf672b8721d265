"""The picker's per-endpoint view (picker_endpoint_* on its /metrics) against real vLLM pages at
rest, after the other tests left history on them (stale lora_requests_info series, counters):
queue, running, KV usage and the adapter lists are exactly what each page says."""

from __future__ import annotations

import time

from ..load import gauge, lora_lists, page, wait_idle
from .gateway import EndpointView

NO_LORA_SAMPLE = (frozenset(), frozenset(), 0)
"""The picker's lists before vLLM's first lora_requests_info sample: none, and no slot count."""


def page_view(fams) -> EndpointView:
    return EndpointView(gauge(fams, "vllm:num_requests_waiting"), gauge(fams, "vllm:num_requests_running"),
                        gauge(fams, "vllm:kv_cache_usage_perc"), lora_lists(fams) or NO_LORA_SAMPLE)


def test_the_pickers_view_is_what_the_real_pages_say(servers, gateway):
    gw = gateway()
    wait_idle(servers.all)
    before = {s.key: page_view(page(s)) for s in servers.all}
    t = time.monotonic()
    gw.wait_scraped_since(t, 0.05)
    seen = gw.view()
    after = {s.key: page_view(page(s)) for s in servers.all}
    assert before == after, "a server was not at rest"
    assert seen == after
