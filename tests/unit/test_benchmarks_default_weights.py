"""The shipped scorer weights exist once: the picker's `{}` config, every rendered pool config
and the benchmark's `picker-default` strategy all take them from DEFAULT_SCORER_WEIGHTS."""

from __future__ import annotations

import yaml

from benchmarks import upstream_epp
from benchmarks.catalog import resolve
from benchmarks.scenario import SCENARIO_DIR
from components.builders import inference_pool as ip
from components.catalog.runtimes import resolve_preset
from endpoint_picker.config import DEFAULT_SCORER_WEIGHTS, load_config
from tests.unit.test_builders_serving import MODELS, POOL, SERVER


def test_picker_defaults_are_the_table():
    assert {s.type: s.weight for s in load_config({}).scheduling.scorers} == DEFAULT_SCORER_WEIGHTS


def test_rendered_pool_config_uses_the_table(monkeypatch):
    cfg = ip.picker_config(POOL, SERVER, resolve_preset(SERVER), MODELS)
    assert {s["type"]: s["weight"] for s in cfg["scheduling"]["scorers"]} == DEFAULT_SCORER_WEIGHTS
    # change the table and the render follows (no second copy of the numbers anywhere)
    monkeypatch.setitem(DEFAULT_SCORER_WEIGHTS, "prefix-cache-scorer", 7)
    cfg = ip.picker_config(POOL, SERVER, resolve_preset(SERVER), MODELS)
    assert {s["type"]: s["weight"] for s in cfg["scheduling"]["scorers"]}["prefix-cache-scorer"] == 7


def test_the_evaluation_measures_what_ships_and_the_reference_is_the_epps_default():
    spec = resolve("evaluation")[0]
    cand = next(s for s in spec.strategies if s.name == spec.candidate)
    ref = next(s for s in spec.strategies if s.name == spec.reference)
    assert cand.type == "picker" and spec.picker_config(cand) == {}
    ref_cfg = yaml.safe_load((SCENARIO_DIR / ref.config_file).read_text())
    assert {s["type"]: float(s["weight"]) for s in ref_cfg["scheduling"]["scorers"]} == upstream_epp.DEFAULT_WEIGHTS
