"""Config validation: exact messages naming the config path."""

from __future__ import annotations

import pytest

from endpoint_picker.config import PickerConfig, load_config
from endpoint_picker.errors import ConfigError


def test_empty_config_is_the_benchmarked_default():
    cfg = load_config({})
    # The winner of the configuration search in benchmarks/ (the reference's is queue 2, kv 2, prefix 3).
    assert [(s.type, s.weight) for s in cfg.scheduling.scorers] == [
        ("queue-scorer", 2), ("kv-cache-utilization-scorer", 1), ("prefix-cache-scorer", 5),
        ("lora-affinity-scorer", 1), ("inflight-load-scorer", 2),
    ]
    assert cfg.scheduling.picker.type == "max-score-picker"
    assert (cfg.saturation.queue_threshold, cfg.saturation.kv_cache_threshold, cfg.saturation.metrics_staleness_ms) == (5, 0.8, 300)
    # Chosen from the scrape cost on real vLLM (tests/fixtures/vllm_metrics/scrape_cost.json).
    assert cfg.scrape.interval_ms == 100


def test_staleness_must_exceed_the_scrape_interval():
    with pytest.raises(ConfigError) as e:
        load_config({"scrape": {"interval_ms": 300}})
    assert str(e.value).endswith("saturation.metrics_staleness_ms (300) must be above scrape.interval_ms (300): "
                                 "every endpoint would count as stale (saturated) between two scrapes")
    assert load_config({"scrape": {"interval_ms": 300, "engine": "none"}}).scrape.interval_ms == 300  # no scraping
    assert load_config({"scrape": {"interval_ms": 300}, "saturation": {"metrics_staleness_ms": 600}})


def test_example_config_from_readme(tmp_path):
    p = tmp_path / "picker.yaml"
    p.write_text("""
scheduling:
  filters: []
  scorers:
    - {type: queue-scorer, weight: 2}
    - {type: kv-cache-utilization-scorer, weight: 2}
    - {type: prefix-cache-scorer, weight: 3, parameters: {block_size_tokens: 64, max_prefix_blocks: 2048}}
  picker: {type: max-score-picker, parameters: {max_endpoints: 3}}
saturation: {queue_threshold: 5, kv_cache_threshold: 0.8, metrics_staleness_ms: 200}
scrape: {interval_ms: 50, path: /metrics, engine: vllm}
models: {served: [llama], reject_unknown: false}
rate_limits: [{calls: 100, key: user, renewal_period: minute}]
auth: {user_header: x-user-id}
""")
    cfg = load_config(p)
    assert isinstance(cfg, PickerConfig)
    assert cfg.rate_limits[0].calls == 100


@pytest.mark.parametrize(
    "data,message",
    [
        pytest.param({"scheduling": {"scorers": [{"type": "magic-scorer"}]}},
                     "scheduling.scorers[0].type: unknown scorer type 'magic-scorer' (known: inflight-load-scorer, "
                     "kv-cache-utilization-scorer, lora-affinity-scorer, prefix-cache-scorer, queue-scorer)", id="unknown-scorer"),
        pytest.param({"scheduling": {"filters": [{"type": "queue-scorer"}]}},
                     "scheduling.filters[0].type: unknown filter type 'queue-scorer' (known: label-selector-filter, saturation-filter)",
                     id="scorer-as-filter"),
        pytest.param({"scheduling": {"scorers": [{"type": "prefix-cache-scorer", "parameters": {"block_size": 4}}]}},
                     "scheduling.scorers[0].parameters.block_size: Extra inputs are not permitted", id="unknown-parameter"),
        pytest.param({"scheduling": {"picker": {"type": "max-score-picker", "parameters": {"max_endpoints": 0}}}},
                     "scheduling.picker.parameters.max_endpoints: Input should be greater than or equal to 1", id="bad-parameter"),
        pytest.param({"scheduling": {"scorers": [{"type": "queue-scorer"}, {"type": "queue-scorer"}]}},
                     "scheduling.scorers[1].type: duplicate scorer 'queue-scorer'", id="duplicate-scorer"),
        pytest.param({"scrape": {"engine": "sglang"}}, "scrape.engine: Input should be 'vllm' or 'none'", id="bad-engine"),
        pytest.param({"rate_limits": [{"key": "user", "calls": 0}]}, "rate_limits[0].calls: Input should be greater than 0", id="zero-calls"),
        pytest.param({"sheduling": {}}, "sheduling: Extra inputs are not permitted", id="typo-top-level"),
        pytest.param({"ext_proc": {"chunk_size": 70000}}, "ext_proc.chunk_size: Input should be less than or equal to 62000", id="chunk-too-big"),
    ],
)
def test_rejections(data, message):
    with pytest.raises(ConfigError) as e:
        load_config(data)
    assert str(e.value) == message


def test_unreadable_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "missing.yaml")


def test_criticality_mapping():
    from endpoint_picker.config import CRITICALITY_PRIORITY

    assert CRITICALITY_PRIORITY == {"Critical": 100, "Standard": 0, "Sheddable": -10}
    assert [p < 0 for p in CRITICALITY_PRIORITY.values()] == [False, False, True]  # only Sheddable is shed
