"""The in-process ext_proc replay drives the real transport and state machine end to end."""

from __future__ import annotations

from endpoint_picker.testing import h2_replay


def test_replay_echoes_the_body_and_the_picker_decides():
    opener = h2_replay.picker_opener(endpoints=4)
    picker = h2_replay.replay(opener, 100_000, 20)
    null = h2_replay.replay(h2_replay.null_opener(), 100_000, 20)
    # both echo the whole request body back to Envoy (FULL_DUPLEX_STREAMED) and answer the response
    assert 100_000 < null["bytes_out_per_request"] < picker["bytes_out_per_request"] < 101_500
    assert picker["cpu_s_per_request"] > null["cpu_s_per_request"] > 0


def test_every_replayed_request_was_routed():
    from endpoint_picker.selfmetrics import SelfMetrics

    seen = []
    orig = SelfMetrics.decided

    def decided(self, endpoint, reason, seconds):
        seen.append(endpoint)
        orig(self, endpoint, reason, seconds)

    SelfMetrics.decided = decided
    try:
        h2_replay.replay(h2_replay.picker_opener(endpoints=4), 300, 30)
    finally:
        SelfMetrics.decided = orig
    assert len(seen) == 50 and set(seen) <= {f"10.0.0.{i}:8000" for i in range(1, 5)}   # 20 warm-up + 30
