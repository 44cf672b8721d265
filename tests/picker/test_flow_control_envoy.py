"""Flow control behind a real Envoy and the real picker process: a request to a pool with no ready
endpoint waits (longer than Envoy's message timeout, which the picker's override extends) and is
served once one is ready; past its TTL it gets the JSON 503; at saturation critical requests
overtake queued sheddable ones."""

from __future__ import annotations

import concurrent.futures as cf
import time

from endpoint_picker.envoy_bootstrap import held_message_timeout_s

from .conftest import POOL
from endpoint_picker.testing.picker import write_endpoints

FLOW = {"ttl_s": 3, "no_endpoint_ttl_s": 4}
OBJECTIVES = [
    {"apiVersion": "llm-d.ai/v1alpha2", "kind": "InferenceObjective",
     "metadata": {"name": m, "namespace": "default", "annotations": {"inference-gateway.dev/model": m}},
     "spec": {"priority": p, "poolRef": {"name": POOL}}}
    for m, p in (("batch", -10), ("base", 100))
]


def flow_stack(stack, backends=None, objects=(), saturation=None):
    config = {"flow_control": FLOW, **({"saturation": saturation} if saturation else {})}
    return stack(backends or {"pod-a": {}}, config=config, objects=list(objects), request_body_mode="BUFFERED",
                 response_body_mode="STREAMED", message_timeout_s=0.5, max_message_timeout_s=held_message_timeout_s(FLOW))


def set_ready(s, ready: bool) -> None:
    write_endpoints(s.endpoints_file, [{**p, "ready": ready} for p in s.pods])
    want = f"picker_ready_endpoints {len(s.pods) if ready else 0}"
    deadline = time.monotonic() + 5
    while want not in s.picker_metrics():
        assert time.monotonic() < deadline, s.picker_metrics()
        time.sleep(0.05)


def gauge(s, name: str) -> float:
    for line in s.picker_metrics().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in the picker's metrics")


def test_a_request_waits_past_the_message_timeout_for_an_endpoint_and_is_served(stack):
    s = flow_stack(stack)
    set_ready(s, False)
    with cf.ThreadPoolExecutor(1) as pool:
        t0 = time.monotonic()
        fut = pool.submit(s.post, "/v1/completions", json={"model": "m", "prompt": "hello"})
        deadline = time.monotonic() + 5
        while gauge(s, "picker_flow_queued_requests") < 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(1.5)  # three message timeouts (0.5 s) later it still waits
        assert not fut.done()
        set_ready(s, True)
        r = fut.result(10)
    assert r.status_code == 200, r.text
    assert s.pod(r) == "pod-a"
    assert time.monotonic() - t0 >= 1.5
    text = s.picker_metrics()
    assert "picker_cold_start_seconds_count 1" in text
    assert 'picker_flow_queue_wait_seconds_count{priority="0",outcome="dispatched"} 1' in text


def test_no_endpoint_within_the_ttl_is_a_json_503(stack):
    s = flow_stack(stack)
    set_ready(s, False)
    t0 = time.monotonic()
    r = s.post("/v1/completions", json={"model": "m", "prompt": "hello"})
    waited = time.monotonic() - t0
    assert r.status_code == 503
    assert r.headers["x-llm-d-request-dropped-reason"] == "rejected-no-endpoints"
    assert r.headers["content-type"] == "application/json"
    assert r.json()["error"]["message"] == "no endpoint became ready within 4s (the pool may be scaling up from zero)"
    assert 3.9 <= waited < 6


def test_at_saturation_critical_requests_overtake_waiting_sheddable_ones(stack):
    # The backend reports a full queue: the pool is saturated and everything waits in the picker.
    # queue_threshold 1: one request counts as a full queue, so each scrape releases one request
    # (the backend's reported queue stays 0) and the order the backend sees is the queue's.
    s = flow_stack(stack, {"pod-a": {"waiting": 10}}, OBJECTIVES, saturation={"queue_threshold": 1})
    s.wait_fresh()
    with cf.ThreadPoolExecutor(8) as pool:
        batch = [pool.submit(s.post, "/v1/completions", json={"model": "batch", "prompt": "x"}) for _ in range(3)]
        time.sleep(0.5)
        crit = [pool.submit(s.post, "/v1/completions", json={"model": "base", "prompt": "x"}) for _ in range(3)]
        deadline = time.monotonic() + 5
        while gauge(s, "picker_flow_queued_requests") < 6:
            assert time.monotonic() < deadline, s.picker_metrics()
            time.sleep(0.05)
        s.backends["pod-a"].state.waiting = 0  # room again
        results = [f.result(15) for f in batch + crit]
    assert [r.status_code for r in results] == [200] * 6
    seen = [r["received_model"] for r in s.backends["pod-a"].state.requests]
    assert seen == ["base"] * 3 + ["batch"] * 3
    text = s.picker_metrics()
    assert 'picker_flow_queue_wait_seconds_count{priority="100",outcome="dispatched"} 3' in text
    assert 'picker_flow_queue_wait_seconds_count{priority="-10",outcome="dispatched"} 3' in text
