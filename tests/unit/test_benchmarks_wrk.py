"""Parsing wrk's report (the saturation level's low-CPU client)."""

from __future__ import annotations

import pytest

from benchmarks import wrk

WRK_OUTPUT = """Running 2s test @ http://127.0.0.1:40000/v1/completions
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    35.10ms    7.52ms 120.00ms   80.00%
    Req/Sec     1.80k   120.00     2.00k    70.00%
  Latency Distribution
     50%   34.67ms
     75%   38.10ms
     90%  412.00us
     99%    1.20s
  3587 requests in 2.00s, 1.02MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:   1793.62
Transfer/sec:    512.00KB
"""


def test_wrk_report_is_parsed_with_units_and_every_error_kind():
    r = wrk.parse(WRK_OUTPUT)
    assert (r.requests, r.errors, r.seconds) == (3587, 7, 2.0)
    assert r.percentiles_s == {"p50": pytest.approx(0.03467), "p75": pytest.approx(0.0381),
                               "p90": pytest.approx(0.000412), "p99": pytest.approx(1.2)}


def test_wrk_report_without_latency_distribution_is_an_error():
    with pytest.raises(ValueError, match="unexpected wrk output"):
        wrk.parse("  10 requests in 1.00s, 1KB read\n")


def test_wrk_lua_body_is_escaped():
    lua = wrk._lua(b'{"prompt":"say \\"hi\\""}')
    assert 'wrk.body = "{\\"prompt\\":\\"say \\\\\\"hi\\\\\\"\\"}"' in lua
