"""Endpoint state (seed 004) from objects and pool health, for both sources: the rules, the
cluster reading of Deployments and InferencePool conditions, and the local update lock."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from igw.endpoint_state import (
    DEPLOYMENT_CREATING,
    DEPLOYMENT_FAILED,
    DEPLOYMENT_READY,
    NOT_UPDATING,
    PoolHealth,
    endpoint_states,
    specs_from_objects,
)
from igw.kube.status_source import cluster_report
from igw.local.update_lock import UpdateLock, UpdateRecord, UpdateRefused, holder, last_good, save_last_good

LABELS = {"app": "vllm"}


def objects(ready: int = 2, picker_ready: int = 1, **deployment_status) -> list[dict]:
    """Seed 002's split on one pool (current 90 / challenger 10) with a tagged objective."""
    return [
        {"apiVersion": "inference.networking.k8s.io/v1", "kind": "InferencePool", "metadata": {"name": "pool", "namespace": "ns"},
         "spec": {"selector": {"matchLabels": LABELS}, "endpointPickerRef": {"name": "pool-epp"}}},
        {"apiVersion": "llm-d.ai/v1alpha2", "kind": "InferenceObjective",
         "metadata": {"name": "multi-model", "annotations": {"inference-gateway.dev/model": "multi-model",
                                                              "inference-gateway.dev/tags": '{"team": "gen-ai"}'}},
         "spec": {"priority": 100, "poolRef": {"name": "pool"}}},
        {"apiVersion": "llm-d.ai/v1alpha2", "kind": "InferenceModelRewrite", "metadata": {"name": "multi-model"},
         "spec": {"poolRef": {"name": "pool"}, "rules": [{"matches": [{"model": {"type": "Exact", "value": "multi-model"}}],
                                                          "targets": [{"modelRewrite": "model-a", "weight": 90},
                                                                      {"modelRewrite": "model-b", "weight": 10}]}]}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "pool-epp"},
         "data": {"picker.yaml": "models: {deployed: {current: model-a, challenger: model-b}}\n"}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "vllm", "generation": 2},
         "spec": {"replicas": 2, "template": {"metadata": {"labels": LABELS}}},
         "status": {"readyReplicas": ready, "updatedReplicas": 2, "observedGeneration": 2, **deployment_status}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "pool-epp"},
         "spec": {"replicas": 1, "template": {"metadata": {"labels": {"app": "pool-epp"}}}},
         "status": {"readyReplicas": picker_ready}},
    ]


class Lister:
    def __init__(self, objs: list[dict]) -> None:
        self.objs = objs

    def list(self, api_version: str, kind: str, namespace: str | None = None) -> dict:
        return {"items": [o for o in self.objs if o["kind"] == kind]}


def entities(report: dict) -> list[tuple]:
    e = report["endpoints"][0]
    return [(e["state"]["ready"], e["state"]["config_update"])] + [
        (s["name"], s["entity_name"], s["traffic_percentage"], s["state"]["deployment"], s["state"]["deployment_state_message"])
        for s in e["served_entities"]]


def test_served_entities_are_the_split_by_their_served_names():
    endpoints, pools = specs_from_objects(objects())
    assert [(e.name, e.pool, e.criticality, e.tags) for e in endpoints] == [("multi-model", "pool", "Critical", {"team": "gen-ai"})]
    assert [(s.name, s.model, s.traffic_percentage) for s in endpoints[0].served_entities] == [
        ("current", "model-a", 90), ("challenger", "model-b", 10)]
    assert pools["pool"].picker == "pool-epp"


def test_cluster_ready():
    assert entities(cluster_report("s", Lister(objects()), "ns")) == [
        ("READY", "NOT_UPDATING"),
        ("current", "model-a", 90, DEPLOYMENT_READY, "2/2 pods ready"),
        ("challenger", "model-b", 10, DEPLOYMENT_READY, "2/2 pods ready")]


def test_cluster_rollout_in_progress_keeps_the_endpoint_ready():
    report = cluster_report("s", Lister(objects(ready=2, updatedReplicas=1)), "ns")
    assert entities(report)[0] == ("READY", "IN_PROGRESS")
    assert entities(report)[1][4] == "2/2 pods ready; rollout of vllm in progress (the old pods serve until the new ones are ready)"


def test_cluster_failed_rollout_and_missing_picker():
    stuck = {"conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                             "message": 'ReplicaSet "vllm-7d" has timed out progressing.'}]}
    assert entities(cluster_report("s", Lister(objects(ready=0, **stuck)), "ns"))[1][3:] == (
        DEPLOYMENT_FAILED, '0/2 pods ready: Deployment vllm: ProgressDeadlineExceeded: ReplicaSet "vllm-7d" has timed out progressing.')
    assert entities(cluster_report("s", Lister(objects(picker_ready=0)), "ns"))[:2] == [
        ("NOT_READY", "NOT_UPDATING"), ("current", "model-a", 90, DEPLOYMENT_CREATING, "2/2 pods ready: the pool's picker is not ready")]


def test_cluster_pool_refused_by_the_gateway():
    objs = objects()
    objs[0]["status"] = {"parents": [{"parentRef": {"name": "gw"}, "conditions": [
        {"type": "Accepted", "status": "True"},
        {"type": "ResolvedRefs", "status": "False", "reason": "InvalidExtensionRef", "message": "Service pool-epp not found"}]}]}
    assert entities(cluster_report("s", Lister(objs), "ns"))[1][3:] == (
        DEPLOYMENT_FAILED, "2/2 pods ready: InferencePool ResolvedRefs False for gw: InvalidExtensionRef: Service pool-epp not found")


def test_an_entity_without_traffic_does_not_hold_the_endpoint_back():
    endpoints, _ = specs_from_objects(objects())
    states = endpoint_states(endpoints, {"pool": PoolHealth(1, 0, True, note="pod vllm-0 is starting")}, NOT_UPDATING)
    assert (states[0].ready, states[0].served_entities[0].deployment_state_message) == ("NOT_READY", "0/1 pods ready: pod vllm-0 is starting")


def test_one_update_at_a_time(tmp_path: Path):
    first = UpdateLock(tmp_path)
    first.acquire(UpdateRecord(os.getpid(), "update", "external", time.mktime((2026, 1, 2, 3, 4, 5, 0, 0, -1)), 7))
    with pytest.raises(UpdateRefused) as e:
        UpdateLock(tmp_path).acquire(UpdateRecord(1, "update", "external", time.time()))
    assert str(e.value) == (
        f"stack 'external' is already being changed: an update of stack 'external' by igw up (pid {os.getpid()}, started "
        "03:04:05, from generation 7) is applying; wait for it to finish, or cancel it with `igw up --stack external "
        "--cancel` (it rolls back to the last good config)")
    assert holder(tmp_path).pid == os.getpid()
    first.relabel("rollback")
    assert holder(tmp_path).kind == "rollback"
    first.release()
    assert holder(tmp_path) is None
    with UpdateLock(tmp_path) as again:
        again.acquire(UpdateRecord(2, "start", "external", time.time()))


def test_last_good_is_replaced_whole(tmp_path: Path):
    a, b = tmp_path / "a" / "manifests", tmp_path / "b" / "manifests"
    for d, name in ((a, "one"), (b, "two")):
        d.mkdir(parents=True)
        (d / f"{name}.yaml").write_text("kind: ConfigMap\n")
    state = tmp_path / "state"
    state.mkdir()
    save_last_good(state, a, 3)
    save_last_good(state, b, 4)
    manifests, generation = last_good(state)
    assert (sorted(p.name for p in manifests.iterdir()), generation) == (["two.yaml"], 4)


def test_igw_diff_refuses_a_conversion(tmp_path: Path):
    """The PR gate before `pulumi up`: a head render whose endpoint changed kind is refused."""
    import yaml

    from igw.commands.diff import conversions

    egress = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "pool-egress"},
              "spec": {"template": {"metadata": {"labels": LABELS, "annotations": {
                  "inference-gateway.dev/runtime": "external", "inference-gateway.dev/models": "gpt-4o"}}}}}
    for name, objs in (("base", [*objects(), egress]), ("head", objects())):
        (tmp_path / name / "manifests").mkdir(parents=True)
        (tmp_path / name / "manifests" / "all.yaml").write_text(yaml.safe_dump_all(objs))
    assert conversions(tmp_path / "base", tmp_path / "head") == [
        "models[name=multi-model]: endpoint 'multi-model' is an external endpoint and cannot be converted to a self-hosted "
        "model; create a new endpoint under another name (and remove this one)"]
    assert conversions(tmp_path / "head", tmp_path / "head") == []
