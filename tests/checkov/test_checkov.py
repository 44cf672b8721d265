"""checkov (Kubernetes framework) over every committed stack's rendered manifests.

Fails on any finding that ``waivers.yaml`` does not name (check, kind, object name, stacks, reason),
on a waiver that matches nothing, on more than ``MAX_WAIVERS`` waivers, and on an object-level
``checkov.io/skip`` annotation without a reason. checkov runs from its own environment
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

import pytest
import yaml

from igw.stackfile import ROOT, available_stacks
from igw.synth import synthesize

MAX_WAIVERS = 5
WAIVERS = Path(__file__).with_name("waivers.yaml")
SETUP = ".ci/setup-checkov"


def checkov_binary() -> Path:
    version = re.search(r'"checkov==([^"]+)"', (ROOT / "tools/checkov/pyproject.toml").read_text()).group(1)
    cache = Path(os.environ.get("IGW_CACHE_DIR") or Path.home() / ".cache" / "inference-gateway")
    return cache / f"checkov-{version}" / "bin" / "checkov"


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, dict]:
    binary = checkov_binary()
    if not binary.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"checkov is not installed at {binary}; run {SETUP}")
        pytest.skip(f"checkov is not installed; run {SETUP}")
    out = tmp_path_factory.mktemp("checkov")
    for stack in available_stacks():
        synthesize(stack, out / stack)
    per_stack = {}
    t0 = time.monotonic()
    for stack in available_stacks():
        run = subprocess.run(
            [str(binary), "-d", str(out / stack / "manifests"), "--framework", "kubernetes", "-o", "json", "--compact", "--quiet"],
            capture_output=True, text=True, timeout=300,
        )
        report = json.loads(run.stdout)
        per_stack[stack] = report if isinstance(report, dict) else report[0]
    print(f"checkov over {len(per_stack)} stacks took {time.monotonic() - t0:.1f} s")
    return per_stack


def _object(resource: str) -> tuple[str, str]:
    """checkov's resource id ``Kind.namespace.name`` (or ``Kind.name``) -> (kind, name)."""
    parts = resource.split(".")
    return parts[0], parts[-1]


def waivers() -> list[dict]:
    return yaml.safe_load(WAIVERS.read_text())["waivers"]


def waiver_for(stack: str, finding: dict) -> int | None:
    kind, name = _object(finding["resource"])
    for i, w in enumerate(waivers()):
        if (w["check"] == finding["check_id"] and w["kind"] == kind and fnmatch.fnmatchcase(name, w["name"])
                and stack in w.get("stacks", [stack])):
            return i
    return None


def test_waiver_file_is_small_and_explained():
    ws = waivers()
    assert len(ws) <= MAX_WAIVERS, f"{len(ws)} waivers; at most {MAX_WAIVERS}"
    for w in ws:
        assert set(w) <= {"check", "kind", "name", "stacks", "reason"}, w
        assert w["check"] and w["kind"] and w["name"] and len(w["reason"]) > 40, w
        assert set(w.get("stacks", [])) <= set(available_stacks()), w


def test_every_finding_is_waived(results):
    unwaived = [
        f"{stack}: {f['check_id']} {f['resource']} ({f['check_name']})"
        for stack, report in results.items()
        for f in report["results"]["failed_checks"]
        if waiver_for(stack, f) is None
    ]
    assert unwaived == [], "checkov findings without a waiver in tests/checkov/waivers.yaml:\n" + "\n".join(unwaived)


def test_every_waiver_still_matches_a_finding(results):
    used = {waiver_for(stack, f) for stack, report in results.items() for f in report["results"]["failed_checks"]}
    stale = [w for i, w in enumerate(waivers()) if i not in used]
    assert stale == [], f"waivers that match no finding (delete them): {stale}"


def test_object_skips_name_their_reason(results):
    for stack, report in results.items():
        for s in report["results"].get("skipped_checks", []):
            assert (s.get("check_result") or {}).get("suppress_comment"), f"{stack}: {s['check_id']} {s['resource']} skipped without a reason"


def test_nothing_failed_to_parse(results):
    assert {stack: r["summary"]["parsing_errors"] for stack, r in results.items()} == {s: 0 for s in results}
