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
