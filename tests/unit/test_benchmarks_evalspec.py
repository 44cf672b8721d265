"""Virtual-time scenario files: the committed ones load; bad ones fail naming the YAML path."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from benchmarks import evalspec, stats
from benchmarks.scenario import SCENARIO_DIR, ScenarioError

EVAL = SCENARIO_DIR / "evaluation.yaml"


def test_committed_evaluation_has_every_family_in_both_sets():
    spec = evalspec.load(EVAL)
    families = {c.family for c in spec.workloads}
    assert len(families) >= 8
    for f in families:
        assert {c.set for c in spec.workloads if c.family == f} == {"training", "held_out"}, f
    assert spec.seeds >= 10
    # held-out cells differ from their training cells in parameters, not only in seed
    for f in families:
        train = [c.workload.model_dump(exclude={"seed"}) for c in spec.workloads if c.family == f and c.set == "training"]
        held = [c.workload.model_dump(exclude={"seed"}) for c in spec.workloads if c.family == f and c.set == "held_out"]
        assert all(h not in train for h in held), f


def _write(tmp_path: Path, data: dict) -> Path:
    (tmp_path / "picker-reference.yaml").write_text((SCENARIO_DIR / "picker-reference.yaml").read_text())
    p = tmp_path / "e.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


BASE = yaml.safe_load(EVAL.read_text())


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["workloads"][0]["workload"].update(type="chess"), r"workloads\[0\]\.workload\.type"),
    (lambda d: d["workloads"][0]["workload"]["params"].pop("num_groups"), "shared_prefix needs num_groups"),
    (lambda d: d.update(reference="nobody"), "reference: 'nobody' is not a strategy"),
    (lambda d: d.update(scrape={"interval_ms": 50, "latency_ms": 60}), "latency_ms 60.0 must be below"),
    (lambda d: d["workloads"][1].update(name=d["workloads"][0]["name"]), "duplicate names"),
    (lambda d: d.update(workloads=[w for w in d["workloads"] if w["set"] == "training"]), "held_out set are required"),
    (lambda d: d["strategies"][3].update(config={"scheduling": {"scorers": [{"type": "magic-scorer"}]}}),
     r"strategies\[3\]: scheduling\.scorers\[0\]\.type: unknown scorer type 'magic-scorer'"),
    (lambda d: d["workloads"][0].update(speed=3), r"workloads\[0\]\.speed: Extra inputs are not permitted"),
    (lambda d: d["strategies"][2].update(config_file="nope.yaml"), r"strategies\[2\]: cannot read nope.yaml"),
])
def test_bad_specs_name_the_path(tmp_path, mutate, message):
    data = copy.deepcopy(BASE)
    mutate(data)
    with pytest.raises(ScenarioError, match=message):
        evalspec.load(_write(tmp_path, data))


def test_mean_ci_uses_student_t():
    ci = stats.mean_ci([1.0, 2.0, 3.0, 4.0])
    assert ci["mean"] == 2.5 and ci["n"] == 4
    half = 3.182 * (1.2909944487358056 / 2)   # t(0.975, 3) * sd / sqrt(4)
    assert ci["lo"] == pytest.approx(2.5 - half) and ci["hi"] == pytest.approx(2.5 + half)
    assert stats.mean_ci([None, 5.0])["missing"] == 1 and stats.mean_ci([5.0])["lo"] is None
    assert stats.t975(9) == 2.262 and stats.t975(27) == 2.060 and stats.t975(500) == 1.96
    with pytest.raises(ValueError):
        stats.t975(0)


def test_intervals_separate_and_paired_differences():
    a, b = stats.mean_ci([1.0, 1.1, 0.9]), stats.mean_ci([2.0, 2.1, 1.9])
    assert stats.intervals_separate(a, b) and not stats.intervals_separate(a, stats.mean_ci([0.5, 1.5, 1.0]))
    d = stats.paired_diff_ci([1.0, 2.0, 3.0], [0.5, 1.5, None])
    assert d["mean"] == 0.5 and d["n"] == 2


def test_an_interrupted_evaluation_resumes_from_the_run_cache(tmp_path, monkeypatch):
    from benchmarks import evaluation, runcache

    spec = evalspec.load(EVAL)
    cell = next(c for c in spec.workloads if c.name == "multi-turn-2-5")
    small = cell.model_copy(update={"workload": cell.workload.model_copy(update={"duration_s": 6.0, "warmup_s": 1.0,
                                                                                  "rate": 1.0})})
    spec = spec.model_copy(update={"workloads": [small], "strategies": spec.strategies[:2]})
    cache = runcache.RunCache(tmp_path / "runs.jsonl")
    calls = []
    real = evaluation.run_one
    monkeypatch.setattr(evaluation, "run_one", lambda *a, **k: calls.append(a[1:4]) or real(*a, **k))
    tasks = [(spec, small, s, seed, None) for s in spec.strategies for seed in range(2)]
    first = list(evaluation.run_tasks(tasks, 1, lambda m: None, cache))
    again = list(evaluation.run_tasks(tasks, 1, lambda m: None, runcache.RunCache(tmp_path / "runs.jsonl")))
    assert len(calls) == 4 and [r[:3] for r in again] == [r[:3] for r in first]
    assert [r[3]["ttft_p90"] for r in again] == [r[3]["ttft_p90"] for r in first]
