"""Seed 001's drain formula: terminationGracePeriodSeconds as a pure function."""

from __future__ import annotations

import pytest

from components.builders.grace import drain_breakdown, termination_grace_period_seconds
from components.config.serving import DrainConfig


@pytest.mark.parametrize(
    ("tokens", "tpot_ms", "prefill", "pre_stop", "safety", "expected"),
    [
        # The seed's worked example: 40.96 -> 55.3 -> 85.3 -> 127.9 -> 130.
        (4096, 10, 0.35, 30, 1.5, 130),
        # Seed step 2's "about 100 ms TPOT at max batch ~50" for a slower accelerator.
        (4096, 100, 0.35, 30, 1.5, 880),  # 409.6 -> 552.96 -> 582.96 -> 874.44 -> 880
        (1024, 10, 0.35, 30, 1.5, 70),  # 10.24 -> 13.824 -> 43.824 -> 65.736 -> 70
        (4096, 10, 0.0, 0, 1.0, 50),  # 40.96 -> 50 (no prefill, no preStop, no buffer)
        (8192, 10, 0.35, 30, 1.5, 220),  # 81.92 -> 110.592 -> 140.592 -> 210.888 -> 220
        (1000, 10, 0.0, 10, 1.0, 20),  # exactly 20.0 stays 20 (no float creep to 30)
        (3000, 10, 0.0, 0, 1.0, 30),  # 30.000000000000004 in floats must round to 30
        (1, 10, 0.0, 0, 1.0, 10),  # anything positive is at least 10
    ],
)
def test_grace_period_table(tokens, tpot_ms, prefill, pre_stop, safety, expected):
    assert termination_grace_period_seconds(tokens, tpot_ms, prefill, pre_stop, safety) == expected


def test_defaults_walk_the_seed_steps():
    b = drain_breakdown(4096, 10, 0.35, 30, 1.5)
    assert b.decode_seconds == pytest.approx(40.96)
    assert b.with_prefill_seconds == pytest.approx(55.296)
    assert b.with_pre_stop_seconds == pytest.approx(85.296)
    assert b.with_safety_seconds == pytest.approx(127.944)
    assert b.grace_period_seconds == 130


def test_config_defaults_give_130():
    d = DrainConfig()
    assert (d.max_output_tokens, d.time_per_output_token_ms, d.prefill_overhead, d.pre_stop_seconds, d.safety_factor) == (
        4096, 10.0, 0.35, 30, 1.5,
    )
    assert termination_grace_period_seconds(
        d.max_output_tokens, d.time_per_output_token_ms, d.prefill_overhead, d.pre_stop_seconds, d.safety_factor
    ) == 130
    assert termination_grace_period_seconds() == 130


@pytest.mark.parametrize(
    "bad",
    [
        dict(max_output_tokens=0),
        dict(time_per_output_token_ms=0),
        dict(prefill_overhead=-0.1),
        dict(pre_stop_seconds=-1),
        dict(safety_factor=0.9),
    ],
)
def test_rejects_nonsense(bad):
    args = dict(max_output_tokens=4096, time_per_output_token_ms=10, prefill_overhead=0.35, pre_stop_seconds=30, safety_factor=1.5)
    args.update(bad)
    with pytest.raises(ValueError):
        drain_breakdown(**args)
