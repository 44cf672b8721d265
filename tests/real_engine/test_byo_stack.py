"""The byo stack through the real Pulumi engine against a real kube-apiserver, in order:
`up` creates every object the mock render declares; a changed stack file gives a `preview --diff`
whose changes are exactly what `igw diff` reports for the same two configs; `up` applies it;
`destroy` removes everything (the controller manager completes foreground deletion). Secrets
stay ciphertext in the real state file.

GCP resources cannot run here (no GCP provider plugin), so the stack's dashboard and alerts are
turned off; everything else is the committed stacks/Pulumi.byo.yaml.
"""

from __future__ import annotations

import copy
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from igw.automation import EngineStack, engine_changes, synth_changes
from igw.diff import diff as synth_diff
from igw.diff import to_markdown
from igw.engine import Synthesis, run_program
from igw.kube import KubeClient, LocalCluster, until
from igw.stackfile import read_stack
from tests.real_k8s.test_apply_stacks import differences

STACK = "byo"
REWRITE = "kubernetes:llm-d.ai/v1alpha2:InferenceModelRewrite"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
OBJECTIVE = "kubernetes:llm-d.ai/v1alpha2:InferenceObjective"
SECRET_SIG = "4dabf18193072939515e22adb298388d"


def base_config() -> dict[str, Any]:
    """The committed byo stack file's config, GCP-only parts off."""
    config = copy.deepcopy(read_stack(STACK))
    config["inference-gateway:observability"] = {"dashboard": False, "alerts": False}
    return config


def changed_config() -> dict[str, Any]:
    """Seed 002's later split (50/50), one more replica, and one more served model."""
    config = base_config()
    for model in config["inference-gateway:models"]:
        for target in model.get("targets") or []:
            target["weight"] = 50
    config["inference-gateway:model_servers"][0]["replicas"] = 3
    config["inference-gateway:models"].append({"name": "food-review-v2", "pool": "vllm-llama3-8b-instruct", "criticality": "Sheddable"})
    return config


def render(config: dict[str, Any]) -> Synthesis:
    """The mock engine's render of the same config (what `igw synth` writes)."""
    return run_program(STACK, config)


def by_urn(synthesis: Synthesis) -> dict[str, dict[str, Any]]:
    return {r.urn: r.to_json() for r in synthesis.resources}


def live(admin: KubeClient, obj: dict[str, Any]) -> dict[str, Any] | None:
    meta = obj["metadata"]
    return admin.get(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))


@dataclass
class Run:
    """State shared by the ordered tests of this module."""

    stack: EngineStack
    admin: KubeClient
    hf_token: str
    kubeconfig: str
    admin_token: str
    base: Synthesis
    head: Synthesis | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    def timed(self, step: str, fn, *args, **kwargs):
        t0 = time.monotonic()
        try:
            return fn(*args, **kwargs)
        finally:
            self.seconds[step] = round(time.monotonic() - t0, 1)


@pytest.fixture(scope="module")
def run(tmp_path_factory, engine_cluster: LocalCluster, gke_standin: KubeClient, pulumi_binaries, pytestconfig):
    hf_token = f"hf_{secrets.token_hex(16)}"
    kubeconfig = engine_cluster.admin_kubeconfig.read_text()
    stack = EngineStack(
        tmp_path_factory.mktemp("engine"), STACK, base_config(),
        secrets={"inference-gateway:kubeconfig": kubeconfig, "inference-gateway:hfToken": hf_token},
        skip_await=True, binaries=pulumi_binaries,
    )
    r = Run(stack, gke_standin, hf_token, kubeconfig, engine_cluster.admin_token, render(base_config()))
    yield r
    reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"\nreal_engine byo: seconds per step {r.seconds}")
    try:
        stack.destroy()  # no-op after test_destroy; cleans up when an earlier step failed
    except Exception:  # noqa: BLE001 - best effort; the failure that matters is already reported
        pass


def test_up_creates_every_object_the_render_declares(run: Run):
    result, steps = run.timed("up", run.stack.up)
    assert result.summary.result == "succeeded"
    created = {s.urn for s in steps if s.op == "create" and s.type != "pulumi:pulumi:Stack"}
    assert created == set(by_urn(run.base)), sorted(created ^ set(by_urn(run.base)))
    problems = []
    for obj in run.base.kubernetes_objects():
        stored = live(run.admin, obj)
        if stored is None:
            problems.append(f"{obj['kind']} {obj['metadata']['name']}: missing")
            continue
        wanted = {k: v for k, v in obj.items() if k not in ("metadata", "stringData", "data")}
        problems += [f"{obj['kind']} {obj['metadata']['name']}{d}" for d in differences(wanted, stored)]
    assert problems == []
    # The hfToken secret reached the cluster (and only the cluster).
    secret = run.admin.get("v1", "Secret", "igw-byo-hf-token", run.base.outputs["namespace"])
    assert secret is not None and secret["data"]["token"] and run.hf_token not in json.dumps(secret)
    assert result.outputs["inferencePools"].value == ["vllm-llama3-8b-instruct"]


def test_secrets_stay_ciphertext_in_the_state_file(run: Run):
    exported = json.dumps(run.stack.export())
    on_disk = run.stack.state_file.read_text()
    for text in (exported, on_disk):
        assert run.hf_token not in text
        assert run.admin_token not in text
        assert run.kubeconfig not in text
    resources = run.stack.export()["resources"]
    provider = next(r for r in resources if r["type"] == "pulumi:providers:kubernetes")
    assert provider["inputs"]["kubeconfig"][SECRET_SIG] == "1b47061264138c4ac30d75fd1eb44270"
    assert provider["inputs"]["kubeconfig"]["ciphertext"]
    hf = next(r for r in resources if r["type"] == "kubernetes:core/v1:Secret" and r["urn"].endswith("::igw-byo-hf-token"))
    # The provider records the Secret's data only in encrypted form, in its inputs and outputs.
    for side in ("inputs", "outputs"):
        assert SECRET_SIG in json.dumps(hf[side]) and '"ciphertext"' in json.dumps(hf[side]), (side, hf[side])


def test_preview_diff_of_a_changed_stack_file_is_what_igw_diff_reports(run: Run):
    run.head = render(changed_config())
    run.stack.set_config(changed_config(), {})
    preview, steps = run.timed("preview", run.stack.preview)
    engine = engine_changes(steps)
    ours = synth_changes(synth_diff(by_urn(run.base), by_urn(run.head), run.base.outputs, run.head.outputs))
    assert engine == ours, "\n".join(f"{u.rsplit('::', 1)[1]}: engine {engine.get(u)} igw diff {ours.get(u)}" for u in sorted(set(engine) | set(ours)) if engine.get(u) != ours.get(u))
    # What the change is, in the engine's own words.
    rewrite = next(s for s in steps if s.type == REWRITE)
    assert rewrite.op == "update"
    assert rewrite.detailed == {"spec.rules[0].targets[0].weight": "update", "spec.rules[0].targets[1].weight": "update"}
    server = next(s for s in steps if s.type == DEPLOYMENT and s.urn.endswith("::vllm-llama3-8b-instruct"))
    assert server.op == "update" and server.detailed == {"spec.replicas": "update"}
    assert [(s.type, s.urn.rsplit("::", 1)[1]) for s in steps if s.op == "create"] == [
        (OBJECTIVE, "vllm-llama3-8b-instruct-food-review-v2-objective")]
    # ConfigMaps change in place (enable_config_map_mutable), as igw diff shows them.
    assert not [s.urn for s in steps if s.op in ("replace", "delete", "delete-replaced")]
    assert "spec.rules[0].targets[0].weight" in to_markdown(synth_diff(by_urn(run.base), by_urn(run.head)))
    assert f"~ {REWRITE}: (update)" in preview.stdout and "to replace" not in preview.stdout


def test_up_applies_the_change(run: Run):
    assert run.head is not None, "needs the preview step"
    result, _ = run.timed("up (change)", run.stack.up)
    assert result.summary.result == "succeeded"
    ns = run.base.outputs["namespace"]
    rewrite = run.admin.get("llm-d.ai/v1alpha2", "InferenceModelRewrite", "food-review", ns)
    assert [t["weight"] for t in rewrite["spec"]["rules"][0]["targets"]] == [50, 50]
    assert run.admin.get("apps/v1", "Deployment", "vllm-llama3-8b-instruct", ns)["spec"]["replicas"] == 3
    assert run.admin.get("llm-d.ai/v1alpha2", "InferenceObjective", "food-review-v2", ns)["spec"]["priority"] < 0
    _, steps = run.stack.preview()
    assert engine_changes(steps) == {}, "a second preview after up still has changes"


def test_destroy_removes_everything(run: Run):
    assert run.head is not None, "needs the earlier steps"
    result = run.timed("destroy", run.stack.destroy)
    assert result.summary.result == "succeeded"

    def left() -> list[str]:
        return [f"{o['kind']} {o['metadata']['name']}" for o in run.head.kubernetes_objects() if live(run.admin, o) is not None]

    # Objects the provider does not await (skip_await kinds) may still be finishing their
    # foreground deletion in the controller manager when destroy returns.
    until(lambda: not left(), timeout=60, what=f"every object deleted (left: {left()})")
    assert run.stack.export().get("resources") in (None, [])
