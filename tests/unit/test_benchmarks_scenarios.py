"""Scenario files parse, reject bad input with the key's path, and plan the documented workloads."""

from __future__ import annotations

import pytest

from benchmarks import catalog, scenario, workloads
from benchmarks.scenario import ScenarioError, parse


def test_every_committed_scenario_parses_and_names_are_unique():
    scs = catalog.discover()
    names = [s.name for s in scs]
    assert len(names) == len(set(names))
    assert {"overhead", "shared_prefix", "sharegpt", "lora", "burst", "evaluation"} <= set(names)
    for sc in scs:
        if not isinstance(sc, scenario.Scenario):
            continue    # virtual-time specs validate their picker configs when loaded (evalspec)
        for st in sc.strategies:
            if st.type == "picker":
                from endpoint_picker.config import load_config

                load_config(scenario.picker_config(st))   # every picker config is valid for the picker


def test_resolve_all_and_unknown():
    assert len(catalog.resolve("all")) == len(catalog.discover())
    with pytest.raises(ScenarioError, match="unknown scenario 'nope'"):
        catalog.resolve("nope")


BASE = {
    "name": "t", "kind": "quality",
    "cluster": {"replicas": 2, "time_scale": 2},
    "workload": {"type": "sharegpt", "rate": 4, "duration_s": 5},
    "strategies": [{"name": "rr", "type": "envoy", "lb": "ROUND_ROBIN"}],
}


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.update(kind="speed"), "scenario.kind"),
    (lambda d: d["strategies"][0].update(lb="FASTEST"), r"strategies\[0\].lb"),
    (lambda d: d["strategies"].append({"name": "rr", "type": "oracle"}), "duplicate strategy"),
    (lambda d: d["workload"].update(type="nope"), "workload.type"),
    (lambda d: d["workload"].pop("rate"), "workload.rate: required"),
    (lambda d: d.update(extra=1), "unknown keys"),
    (lambda d: d["cluster"].update(time_scale=0), "cluster.time_scale"),
    (lambda d: d["workload"].update(type="shared_prefix", params={"num_groups": 2}), "workload.params.num_prompts_per_group"),
    (lambda d: d["strategies"].append({"name": "p", "type": "picker", "tls": True}),
     r"strategies\[1\].tls: only for picker strategies of overhead scenarios"),
    (lambda d: d["strategies"].append({"name": "n", "type": "null-processor"}), "null processor makes no decision"),
])
def test_bad_scenarios_name_the_key(mutate, message):
    import copy

    d = copy.deepcopy(BASE)
    mutate(d)
    with pytest.raises(ScenarioError, match=message):
        parse(d)


def test_oracle_only_in_quality_scenarios():
    d = {"name": "o", "kind": "overhead", "overhead": {}, "strategies": [{"name": "x", "type": "oracle"}]}
    with pytest.raises(ScenarioError, match="oracle"):
        parse(d)


def test_shared_prefix_plan_shape_and_kv_demand():
    wl = {"type": "shared_prefix", "rate": 40, "duration_s": 10, "seed": 3,
          "params": {"num_groups": 4, "num_prompts_per_group": 3, "system_prompt_len": 100, "question_len": 20,
                     "output_len": 8}}
    reqs = workloads.plan(wl, "m", time_scale=2.0)
    assert 150 < len(reqs) < 250                       # 20 real req/s for 10 s
    assert all(0 <= r.t < 10 for r in reqs)
    import orjson

    by_group: dict[int, set[str]] = {}
    for r in reqs:
        body = orjson.loads(r.body)
        assert len(body["prompt"]) == 120 * 4           # 4 bytes per simulator token
        assert body["max_tokens"] == 8 and body["stream"] and body["stream_options"]["include_usage"]
        by_group.setdefault(r.group, set()).add(body["prompt"][:400])
    assert set(by_group) == {0, 1, 2, 3}
    assert all(len(v) == 1 for v in by_group.values())  # one system prompt per group
    assert workloads.kv_demand(wl) == 400
    assert workloads.plan(wl, "m", 2.0)[5].body == reqs[5].body   # seeded


def test_sharegpt_lengths_follow_the_documented_clipped_lognormal():
    import random

    rng = random.Random(0)
    xs = [workloads.sharegpt_lengths(rng, {}) for _ in range(4000)]
    ins = sorted(x[0] for x in xs)
    outs = sorted(x[1] for x in xs)
    assert 90 < ins[len(ins) // 2] < 135 and 120 < outs[len(outs) // 2] < 180
    assert min(ins) >= 4 and max(ins) <= 2048 and min(outs) >= 8 and max(outs) <= 512


def test_burst_and_lora_plans():
    b = workloads.plan({"type": "burst", "rate": 4, "duration_s": 10, "params": {"burst_every_s": 4, "burst_size": 5}}, "m", 1)
    times = [r.t for r in b]
    assert times.count(2.0) == 5 and times.count(6.0) == 5
    lo = workloads.plan({"type": "lora", "rate": 50, "duration_s": 4,
                         "params": {"adapters": ["a", "b"], "weights": [9, 1]}}, "m", 1)
    models = [r.model for r in lo]
    assert set(models) == {"a", "b"} and models.count("a") > models.count("b") * 3


def test_list_names_every_scenario_and_its_strategies(capsys):
    import argparse

    from benchmarks import cli

    assert cli.run(argparse.Namespace(list=True), "t") == 0
    out = capsys.readouterr().out
    assert "crosscheck       crosscheck" in out and "upstream-epp, picker-reference, picker-default" in out
    assert "evaluation       evaluation" in out and "search           search" in out
