"""Load-generator statistics: percentiles, histogram quantiles, goodput, SSE timing, samples."""

from __future__ import annotations

import asyncio
import math

import pytest

from benchmarks import stats
from benchmarks.httpclient import Pool, Response, _scan_sse
from benchmarks.loadgen import Sample, closed_loop, open_loop, poisson_offsets, to_sample


def test_percentile_matches_linear_interpolation():
    xs = [1, 2, 3, 4]
    assert stats.percentile(xs, 50) == 2.5
    assert stats.percentile(xs, 0) == 1
    assert stats.percentile(xs, 100) == 4
    assert stats.percentile([7], 99) == 7
    assert stats.percentile([], 50) is None
    assert stats.percentile(list(range(101)), 90) == pytest.approx(90)


def test_summarize_ignores_none_and_reports_count():
    s = stats.summarize([3.0, None, 1.0, 2.0])
    assert s["n"] == 3 and s["p50"] == 2.0 and s["mean"] == 2.0
    assert stats.summarize([])["p50"] is None


HIST = """# TYPE picker_decision_duration_seconds histogram
picker_decision_duration_seconds_bucket{le="0.001"} 50
picker_decision_duration_seconds_bucket{le="0.005"} 90
picker_decision_duration_seconds_bucket{le="0.01"} 100
picker_decision_duration_seconds_bucket{le="+Inf"} 100
picker_decision_duration_seconds_sum 0.2
picker_decision_duration_seconds_count 100
"""


def test_histogram_parse_and_quantile():
    b = stats.parse_histogram(HIST, "picker_decision_duration_seconds")
    assert b == [(0.001, 50.0), (0.005, 90.0), (0.01, 100.0), (math.inf, 100.0)]
    assert stats.histogram_quantile(0.5, b) == pytest.approx(0.001)
    assert stats.histogram_quantile(0.25, b) == pytest.approx(0.0005)      # interpolated from 0
    assert stats.histogram_quantile(0.7, b) == pytest.approx(0.003)        # halfway through (1 ms, 5 ms]
    assert stats.histogram_quantile(0.5, []) is None


def test_histogram_quantile_in_inf_bucket_returns_last_finite_bound():
    b = [(0.001, 1.0), (math.inf, 10.0)]
    assert stats.histogram_quantile(0.99, b) == 0.001


def test_diff_buckets_isolates_one_run():
    before = [(0.001, 10.0), (math.inf, 10.0)]
    after = [(0.001, 15.0), (math.inf, 20.0)]
    assert stats.diff_buckets(after, before) == [(0.001, 5.0), (math.inf, 10.0)]


def test_goodput_counts_only_requests_within_slo():
    assert stats.goodput([0.5, 1.9, 2.1, None], 2.0, 2.0) == 1.0
    assert stats.goodput([1.0], 2.0, 0) == 0.0


def test_sse_scan_times_first_event_and_reads_usage_across_chunk_splits():
    r = Response(status=200)
    ev1 = b'data: {"choices":[{"index":0,"text":"a"}]}\n\n'
    ev2 = b'data: {"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":8}}}\n\n'
    blob = ev1 + b'data: {"choices":[{"index":0,"text":"b"}]}\n\n' + ev2 + b"data: [DONE]\n\n"
    tail = b""
    for i in range(0, len(blob), 7):     # split mid-event on purpose
        tail = _scan_sse(r, tail + blob[i:i + 7], False)
    assert r.t_first is not None and r.events == 2
    s = to_sample(r.t_first - 0.5, r)
    assert (s.prompt_tokens, s.completion_tokens, s.cached_tokens) == (10, 2, 8)
    assert s.ttft == pytest.approx(0.5)


def test_sample_tpot_and_latency():
    s = Sample(t_sched=10.0, t_end=12.0, status=200, error=None, t_first=10.5, completion_tokens=4)
    assert s.ok and s.latency == 2.0 and s.ttft == 0.5 and s.tpot == pytest.approx(0.5)
    assert Sample(t_sched=0, t_end=1, status=429, error=None).ok is False
    assert Sample(t_sched=0, t_end=1, status=200, error=None, t_first=0.1, completion_tokens=1).tpot is None


def test_poisson_offsets_have_the_requested_rate_and_are_seeded():
    offs = poisson_offsets(200.0, 50.0, seed=3)
    assert offs == sorted(offs) and all(0 < t < 50 for t in offs)
    assert len(offs) / 50.0 == pytest.approx(200.0, rel=0.05)
    assert offs == poisson_offsets(200.0, 50.0, seed=3)


async def _serve_once(delay: float):
    async def handle(reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                n = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                await reader.readexactly(n)
                await asyncio.sleep(delay)
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def test_open_loop_measures_from_planned_time_without_coordinated_omission():
    async def main():
        srv = await _serve_once(0.05)
        port = srv.sockets[0].getsockname()[1]
        pool = Pool("127.0.0.1", port, limit=1)   # one connection: requests must queue in the client
        offs = [0.0, 0.001, 0.002]
        samples, start, _ = await open_loop(offs, [None] * 3, lambda _: pool.request("POST", "/", b"x"))
        pool.close()
        srv.close()
        return samples

    samples = asyncio.run(main())
    assert all(s.ok for s in samples)
    lat = sorted(s.latency for s in samples)
    # the third request waited for two others: its latency counts that wait
    assert lat[0] >= 0.045 and lat[2] >= 0.14


def test_closed_loop_is_bounded_by_duration():
    async def main():
        srv = await _serve_once(0.0)
        port = srv.sockets[0].getsockname()[1]
        pool = Pool("127.0.0.1", port, limit=4)
        samples, start, end = await closed_loop(4, 0.3, lambda n: None, lambda _: pool.request("POST", "/", b"x"))
        pool.close()
        srv.close()
        return samples, end - start

    samples, wall = asyncio.run(main())
    assert samples and all(s.ok for s in samples) and wall < 2.0
