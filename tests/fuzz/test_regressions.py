"""What the fuzzers found, kept as regression tests, and every fuzz target over its seeds (the
same functions `python -m fuzz.run` drives with atheris; see fuzz/results.md)."""

from __future__ import annotations

import pytest

from endpoint_picker.scrape import parse_metrics
from fuzz.targets import TARGETS, seeds


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_every_target_holds_on_its_seeds_and_on_nothing(name):
    target = TARGETS[name][0]
    for data in [b"", *seeds(name)]:
        target(data)


@pytest.mark.parametrize("page, field", [
    # found by the `metrics` target (atheris, 20 s): a negative gauge was taken as is, so a
    # server reporting kv -5 looked emptier than any other and never saturated
    (b"vllm:kv_cache_usage_perc -5.0\n", "kv_usage"),
    (b"vllm:num_requests_waiting{model_name=\"m\"} -3\n", "waiting"),
    # by inspection of the same code path: NaN and infinities parse as floats too
    (b"vllm:num_requests_waiting NaN\n", "waiting"),
    (b"vllm:num_requests_running +Inf\n", "running"),
    (b"vllm:kv_cache_usage_perc -Inf\nvllm:kv_cache_usage_perc 0.5\n", "kv_usage"),
])
def test_metrics_values_that_are_not_finite_non_negative_are_ignored(page, field):
    m = parse_metrics(page)
    assert getattr(m, field) == (0.5 if b"0.5" in page else 0)
    TARGETS["metrics"][0](page)


@pytest.mark.parametrize("value", ["inf", "1e400", "-16", "nan"])
def test_cache_config_labels_that_are_not_finite_non_negative_are_ignored(value):
    """int(float('inf')) raised OverflowError out of the parser (found by inspection next to the
    fuzzer's finding)."""
    m = parse_metrics(f'vllm:cache_config_info{{block_size="{value}",num_gpu_blocks="2048"}} 1\n'.encode())
    assert (m.block_size, m.num_gpu_blocks) == (0, 2048)


def test_metrics_target_fails_on_a_negative_value(monkeypatch):
    """The target's own check is what turned the finding into a crash."""
    import endpoint_picker.scrape as scrape
    from endpoint_picker.datastore import Metrics

    monkeypatch.setattr(scrape, "parse_metrics", lambda text, into=None: Metrics(kv_usage=-5.0))
    with pytest.raises(AssertionError, match="kv_usage = -5.0"):
        TARGETS["metrics"][0](b"x")


def test_continuation_flood_is_a_connection_error_not_unbounded_memory():
    """A header block that never ends (HEADERS without END_HEADERS, then CONTINUATION after
    CONTINUATION) was accumulated without a bound; now it ends the connection with
    ENHANCE_YOUR_CALM once it passes MAX_HEADER_BLOCK. Found reviewing what the h2 target cannot
    reach (its inputs are at most 4 KiB)."""
    import struct

    from endpoint_picker.grpc_h2 import MAX_HEADER_BLOCK, GrpcH2Connection, GrpcH2Server
    from endpoint_picker.grpc_h2_wire import ENHANCE_YOUR_CALM, GOAWAY
    from fuzz.targets import PREFACE, _frame, _Transport

    conn = GrpcH2Connection(GrpcH2Server(lambda path: None))
    transport = _Transport()
    conn.connection_made(transport)
    conn.data_received(PREFACE + _frame(1, 0, 1, b"\x82"))
    chunk = _frame(9, 0, 1, b"\x00" * 16_384)
    sent = 0
    while not transport.closed and sent < 4 * MAX_HEADER_BLOCK:
        conn.data_received(chunk)
        sent += 16_384
    assert transport.closed and sent <= MAX_HEADER_BLOCK + 16_384
    out, frames, pos = b"".join(transport.out), [], 0
    while pos + 9 <= len(out):
        hi, lo, ftype, _, _ = struct.unpack_from(">BHBBI", out, pos)
        length = (hi << 16) | lo
        frames.append((ftype, out[pos + 9:pos + 9 + length]))
        pos += 9 + length
    (goaway,) = [payload for ftype, payload in frames if ftype == GOAWAY]
    assert struct.unpack(">II", goaway[:8]) == (1, ENHANCE_YOUR_CALM)
