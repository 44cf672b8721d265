"""What a real Envoy 1.40 does with responses that are streaming when the picker dies, freezes or
restarts, per ext_proc body mode: the measurements behind `igw up`'s choice of BUFFERED request
and STREAMED response bodies (igw/local/plan_pools.py Pool.ext_proc_modes)."""

from __future__ import annotations

import signal
import threading
import time

import httpx
import pytest

pytestmark = pytest.mark.timeout(120)

SLOW = {"b0": {"stream_delay_s": 0.6}}  # three pieces 0.6 s apart: ~1.8 s per response


def streams_through(stack, fault, n: int = 3) -> list[tuple[int, bool, float]]:
    """Start n streaming requests, apply `fault` once all have their first bytes, and return
    (status, ended with [DONE], seconds) per request (status 0: the connection broke)."""
    first = threading.Semaphore(0)
    out: list[tuple[int, bool, float]] = []

    def one() -> None:
        t0 = time.monotonic()
        data, status = b"", 0
        try:
            with httpx.stream("POST", stack.url + "/v1/chat/completions", timeout=20,
                              json={"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}) as r:
                status = r.status_code
                for chunk in r.iter_bytes():
                    if not data:
                        first.release()
                    data += chunk
        except httpx.HTTPError:
            status = 0
        finally:
            if not data:
                first.release()
        out.append((status, data.rstrip().endswith(b"data: [DONE]"), time.monotonic() - t0))

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for _ in range(n):
        assert first.acquire(timeout=10)
    fault()
    for t in threads:
        t.join(30)
    return out


def test_streamed_responses_survive_a_killed_picker(stack):
    s = stack(SLOW, failure_mode_allow=True, request_body_mode="BUFFERED", response_body_mode="STREAMED")
    out = streams_through(s, s.picker.proc.kill)
    assert [(status, done) for status, done, _ in out] == [(200, True)] * 3


def test_full_duplex_responses_are_cut_by_a_killed_picker(stack):
    """Why igw up does not use FULL_DUPLEX_STREAMED responses: Envoy has handed the chunks to the
    picker and keeps no copy, so it cannot go on without it, failure_mode_allow or not."""
    s = stack(SLOW, failure_mode_allow=True, request_body_mode="BUFFERED", response_body_mode="FULL_DUPLEX_STREAMED")
    out = streams_through(s, s.picker.proc.kill)
    assert not any(done for _, done, _ in out), out


def test_a_frozen_picker_costs_one_message_timeout_mid_stream(stack):
    s = stack(SLOW, failure_mode_allow=True, request_body_mode="BUFFERED", response_body_mode="STREAMED",
              message_timeout_s=0.5)
    try:
        out = streams_through(s, lambda: s.picker.proc.send_signal(signal.SIGSTOP))
    finally:
        s.picker.proc.send_signal(signal.SIGCONT)
    assert [(status, done) for status, done, _ in out] == [(200, True)] * 3
    assert max(took for _, _, took in out) < 1.8 + 0.5 + 1.5, out  # the stream, one timeout, slack


def test_a_restarting_picker_cuts_no_stream_even_when_the_pool_fails_closed(stack):
    """SIGTERM: streams past their decision end with gRPC OK at once (nothing to restore), and
    Envoy forwards the rest without the picker, failure_mode_allow false included; the picker
    exits without waiting out its drain timeout."""
    s = stack(SLOW, failure_mode_allow=False, request_body_mode="BUFFERED", response_body_mode="STREAMED",
              picker_args=["--drain-timeout", "30"])
    t = {}
    out = streams_through(s, lambda: t.setdefault("term", (s.picker.proc.send_signal(signal.SIGTERM), time.monotonic())))
    assert [(status, done) for status, done, _ in out] == [(200, True)] * 3
    assert s.picker.proc.wait(10) == 0
    assert time.monotonic() - t["term"][1] < 10  # not the 30 s drain
