"""The byo stack's non-GKE variant (cluster.existing.gke: false, a kubeconfig path) through the
real engine: every declared object is created and stored as rendered, none of GKE's kinds is,
the state holds the kubeconfig's path and not its token, and destroy removes everything."""

from __future__ import annotations

import json

from igw.automation import EngineStack
from igw.engine import run_program
from igw.kube import KubeClient, LocalCluster, until
from tests.component.test_existing_cluster import GKE_ONLY_KINDS, non_gke_config
from tests.real_k8s.test_apply_stacks import differences

STACK = "byo"


def test_up_and_destroy_off_gke(tmp_path, engine_cluster: LocalCluster, gke_standin: KubeClient, pulumi_binaries):
    config = non_gke_config()
    config["inference-gateway:cluster"]["existing"]["kubeconfig"] = str(engine_cluster.admin_kubeconfig)
    declared = run_program(STACK, config).kubernetes_objects()
    assert declared and not {o["kind"] for o in declared} & GKE_ONLY_KINDS
    stack = EngineStack(tmp_path / "engine", STACK, config, secrets={"inference-gateway:hfToken": "hf_offgke"},
                        skip_await=True, binaries=pulumi_binaries)
    try:
        result, _ = stack.up()
        assert result.summary.result == "succeeded"
        problems = []
        for obj in declared:
            meta = obj["metadata"]
            stored = gke_standin.get(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))
            wanted = {k: v for k, v in obj.items() if k not in ("metadata", "stringData", "data")}
            problems += [f"{obj['kind']} {meta['name']}: missing"] if stored is None else [
                f"{obj['kind']} {meta['name']}{d}" for d in differences(wanted, stored)]
        assert problems == []
        state = json.dumps(stack.export())
        provider = next(r for r in stack.export()["resources"] if r["type"] == "pulumi:providers:kubernetes")
        assert provider["inputs"]["kubeconfig"] == str(engine_cluster.admin_kubeconfig)
        assert engine_cluster.admin_token not in state and "hf_offgke" not in state
    finally:
        assert stack.destroy().summary.result == "succeeded"

    def left() -> list[str]:
        return [f"{o['kind']} {o['metadata']['name']}" for o in declared
                if gke_standin.get(o["apiVersion"], o["kind"], o["metadata"]["name"], o["metadata"].get("namespace"))]

    until(lambda: not left(), timeout=60, what=f"every object deleted (left: {left()})")
