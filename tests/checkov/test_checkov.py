"""checkov (Kubernetes framework) over every committed stack's rendered manifests.

Fails on any finding that ``waivers.yaml`` does not accept, on a waiver that matches nothing, on
more than ``MAX_WAIVERS`` waivers, and on any object-level ``checkov.io/skip`` annotation (every
accepted finding is in the one waiver file). A waiver matches an object by a stable property, the
images it runs, never by its name. checkov runs from its own environment
(``.ci/setup-checkov``); with CI=true a missing install fails instead of skipping.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from igw.stackfile import ROOT, available_stacks
from igw.synth import synthesize

MAX_WAIVERS = 5
WAIVERS = Path(__file__).with_name("waivers.yaml")
SETUP = ".ci/setup-checkov"
WAIVER_KEYS = {"check", "kind", "images", "reason"}


def checkov_binary() -> Path:
    version = re.search(r'"checkov==([^"]+)"', (ROOT / "tools/checkov/pyproject.toml").read_text()).group(1)
    cache = Path(os.environ.get("IGW_CACHE_DIR") or Path.home() / ".cache" / "inference-gateway")
    return cache / f"checkov-{version}" / "bin" / "checkov"


def waivers() -> list[dict[str, Any]]:
    return yaml.safe_load(WAIVERS.read_text())["waivers"]


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec = obj.get("spec") or {}
    if obj.get("kind") == "Pod":
        return spec
    if obj.get("kind") == "CronJob":
        return spec["jobTemplate"]["spec"]["template"]["spec"]
    return (spec.get("template") or {}).get("spec") or {}


def images(obj: dict[str, Any]) -> list[str]:
    pod = pod_spec(obj)
    return [c["image"] for key in ("initContainers", "containers") for c in pod.get(key) or []]


def matches(waiver: dict[str, Any], check_id: str, obj: dict[str, Any]) -> bool:
    """Whether ``waiver`` accepts ``check_id`` failing on ``obj``: same check and kind, and every
    container image of the object matches one of the waiver's patterns."""
    if waiver["check"] != check_id or waiver["kind"] != obj.get("kind"):
        return False
    found = images(obj)
    return bool(found) and all(any(fnmatch.fnmatchcase(i, p) for p in waiver["images"]) for i in found)


def waiver_for(check_id: str, obj: dict[str, Any]) -> int | None:
    return next((i for i, w in enumerate(waivers()) if matches(w, check_id, obj)), None)


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, tuple[dict, Path]]:
    """stack -> (checkov's JSON report, the manifests directory it scanned)."""
    binary = checkov_binary()
    if not binary.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"checkov is not installed at {binary}; run {SETUP}")
        pytest.skip(f"checkov is not installed; run {SETUP}")
    out = tmp_path_factory.mktemp("checkov")
    per_stack: dict[str, tuple[dict, Path]] = {}
    t0 = time.monotonic()
    for stack in available_stacks():
        synthesize(stack, out / stack)
        manifests = out / stack / "manifests"
        run = subprocess.run(
            [str(binary), "-d", str(manifests), "--framework", "kubernetes", "-o", "json", "--compact", "--quiet"],
            capture_output=True, text=True, timeout=600,
        )
        report = json.loads(run.stdout)
        per_stack[stack] = (report if isinstance(report, dict) else report[0], manifests)
    print(f"\ncheckov over {len(per_stack)} stacks took {time.monotonic() - t0:.1f} s")
    for stack, (report, _) in per_stack.items():
        s = report["summary"]
        print(f"  {stack}: {s['failed']} failed (all waived or listed below), {s['passed']} passed, {s['skipped']} skipped")
    return per_stack


def failed(report: dict) -> list[dict]:
    return report["results"]["failed_checks"] if report["summary"]["failed"] else []


def finding_object(manifests: Path, finding: dict) -> dict[str, Any]:
    """The rendered object a finding is about (igw synth writes one object per file)."""
    return yaml.safe_load((manifests / finding["file_path"].lstrip("/")).read_text())


# -- the waiver file itself (no checkov needed) ---------------------------------------------------

def test_waiver_file_is_small_and_explained():
    ws = waivers()
    assert len(ws) <= MAX_WAIVERS, f"{len(ws)} waivers; at most {MAX_WAIVERS}"
    for w in ws:
        assert set(w) <= WAIVER_KEYS, f"unknown keys {set(w) - WAIVER_KEYS} in {w}"
        assert re.fullmatch(r"CKV_K8S_\d+", w["check"]) and w["kind"], w
        assert w.get("images"), f"a waiver names its objects by their images: {w}"
        assert len(w["reason"]) > 80, f"say why: {w}"


def _with_image(obj: dict, image: str) -> dict:
    clone = json.loads(json.dumps(obj))
    clone["spec"]["template"]["spec"]["containers"][0]["image"] = image
    return clone


PICKER = {"kind": "Deployment", "metadata": {"name": "x-epp", "labels": {"app": "x-epp", "inferencepool": "x-epp"}},
          "spec": {"template": {"spec": {"containers": [{"image": "ghcr.io/inference-gateway/endpoint-picker:local"}]}}}}
VLLM = {"kind": "Deployment", "metadata": {"name": "anything", "labels": {"app": "anything"}},
        "spec": {"template": {"spec": {
            "initContainers": [{"image": "registry.k8s.io/gateway-api-inference-extension/lora-syncer:v1.2.1"}],
            "containers": [{"image": "vllm/vllm-openai:v0.19.0"}]}}}}


@pytest.mark.parametrize(("check", "obj", "waived"), [
    pytest.param("CKV_K8S_11", PICKER, True, id="picker-cpu-limit"),
    pytest.param("CKV_K8S_11", _with_image(PICKER, "us-central1-docker.pkg.dev/p/r/endpoint-picker@sha256:" + "a" * 64), True,
                 id="built-picker-by-digest"),
    pytest.param("CKV_K8S_11", _with_image(PICKER, "envoyproxy/envoy:distroless-v1.40.0"), True, id="egress-proxy"),
    pytest.param("CKV_K8S_11", _with_image(PICKER, "nginx:1.27"), False, id="named-like-a-picker-other-image"),
    pytest.param("CKV_K8S_11", _with_image(PICKER, "evil.io/endpoint-pickerx:1"), False, id="lookalike-image"),
    pytest.param("CKV_K8S_11", VLLM, False, id="model-server-cpu-limit-not-waived"),
    pytest.param("CKV_K8S_43", VLLM, True, id="catalog-tags"),
    pytest.param("CKV_K8S_43", {**_with_image(VLLM, "evil.io/vllm:1"), "metadata": {"name": "vllm-x"}}, False,
                 id="vllm-named-object-with-an-unlisted-image"),
    pytest.param("CKV_K8S_43", _with_image(VLLM, "docker.io/library/busybox:1"), False, id="one-unlisted-image-of-two"),
    pytest.param("CKV_K8S_40", _with_image(VLLM, "openvino/model_server:2024.4"), False, id="uid-waiver-is-per-image"),
    pytest.param("CKV_K8S_40", {"kind": "Deployment", "metadata": {"name": "x"},
                                "spec": {"template": {"spec": {"containers": [{"image": "openvino/model_server:2024.4"}]}}}},
                 True, id="openvino-uid"),
    pytest.param("CKV_K8S_40", {**PICKER, "kind": "StatefulSet"}, False, id="other-kind"),
])
def test_waivers_match_by_stable_properties(check, obj, waived):
    assert (waiver_for(check, obj) is not None) is waived


# -- checkov over every stack ------------------------------------------------------------------

def test_every_finding_is_waived(results):
    unwaived = [
        f"{stack}: {f['check_id']} {f['resource']} ({f['check_name']})"
        for stack, (report, manifests) in results.items()
        for f in failed(report)
        if waiver_for(f["check_id"], finding_object(manifests, f)) is None
    ]
    assert unwaived == [], "checkov findings no waiver in tests/checkov/waivers.yaml accepts:\n" + "\n".join(unwaived)


def test_every_waiver_still_matches_a_finding(results):
    used = {waiver_for(f["check_id"], finding_object(manifests, f))
            for report, manifests in results.values() for f in failed(report)}
    stale = [w for i, w in enumerate(waivers()) if i not in used]
    assert stale == [], f"waivers that match no finding (delete them): {stale}"


def test_no_object_level_skips(results):
    skips = [f"{stack}: {s['check_id']} {s['resource']}" for stack, (report, _) in results.items()
             for s in report["results"].get("skipped_checks", [])]
    assert skips == [], "checkov.io/skip annotations bypass the waiver file; waive in tests/checkov/waivers.yaml:\n" + "\n".join(skips)


def test_nothing_failed_to_parse(results):
    assert {stack: r["summary"]["parsing_errors"] for stack, (r, _) in results.items()} == {s: 0 for s in results}
