"""The GitHub workflows: actionlint-clean, and wired the way the README promises."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from igw.commands import COMMANDS
from igw.stackfile import available_stacks

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
INSTALL = "GOBIN=$PWD/.ci/bin go install github.com/rhysd/actionlint/cmd/actionlint@v1.7.12 (what .ci/run does)"


def load(name: str) -> dict:
    doc = yaml.safe_load((WORKFLOWS / name).read_text())
    doc["on"] = doc.pop(True, doc.get("on"))  # YAML 1.1 reads `on:` as true
    return doc


def actionlint() -> str | None:
    for candidate in (os.environ.get("ACTIONLINT"), str(ROOT / ".ci" / "bin" / "actionlint"), shutil.which("actionlint")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def test_actionlint():
    binary = actionlint()
    if binary is None:
        why = f"actionlint not found at $ACTIONLINT, .ci/bin/actionlint or on PATH; install it with: {INSTALL}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(why)
        pytest.skip(why)
    files = sorted(str(p) for p in WORKFLOWS.glob("*.yml"))
    result = subprocess.run([binary, *files], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def steps(doc: dict, job: str) -> list[dict]:
    return doc["jobs"][job]["steps"]


def step(doc: dict, job: str, uses_prefix: str) -> dict:
    found = [s for s in steps(doc, job) if str(s.get("uses", "")).startswith(uses_prefix)]
    assert len(found) == 1, f"{job}: expected one step using {uses_prefix}"
    return found[0]


def test_pr_runs_every_stack_and_comments():
    pr = load("pr.yml")
    assert "pull_request" in pr["on"]
    assert sorted(pr["jobs"]["stack"]["strategy"]["matrix"]["stack"]) == available_stacks()
    runs = "\n".join(s.get("run", "") for s in steps(pr, "stack"))
    assert "uv sync --locked" in runs
    assert 'igw synth --stack "$STACK"' in runs and "git worktree add" in runs
    assert 'igw policy --stack "$STACK" --from "build/head/$STACK"' in runs
    assert 'igw diff "build/base/$STACK" "build/head/$STACK"' in runs
    assert step(pr, "stack", "marocchino/sticky-pull-request-comment@")["with"]["header"] == "igw-${{ matrix.stack }}"
    assert "bash .ci/run" in "\n".join(s.get("run", "") for s in steps(pr, "tests"))
    assert "uv run pytest" in (ROOT / ".ci" / "run").read_text()  # the README's test command, after the real parts


def test_pr_preview_only_with_a_pulumi_token():
    pr = load("pr.yml")
    assert pr["jobs"]["stack"]["env"]["PULUMI_ACCESS_TOKEN"] == "${{ secrets.PULUMI_ACCESS_TOKEN }}"
    preview = step(pr, "stack", "pulumi/actions@")
    assert preview["uses"] == "pulumi/actions@v6"
    assert preview["if"].startswith("env.PULUMI_ACCESS_TOKEN != ''")
    assert preview["with"]["command"] == "preview" and preview["with"]["diff"] is True
    assert preview["with"]["policyPacks"] == "policy" and preview["with"]["comment-on-pr"] is True
    auth = step(pr, "stack", "google-github-actions/auth@")
    assert auth["if"] == preview["if"]
    assert set(auth["with"]) == {"workload_identity_provider", "service_account"}
    assert pr["jobs"]["stack"]["permissions"]["id-token"] == "write"


def test_deploy_gates_each_stack_behind_its_environment():
    deploy, stack = load("deploy.yml"), load("deploy-stack.yml")
    assert deploy["on"]["push"]["branches"] == ["main"]
    assert deploy["jobs"]["prod"]["needs"] == "dev" and deploy["jobs"]["dev"]["needs"] == "tests"
    assert deploy["jobs"]["prod"]["with"] == {"stack": "prod", "environment": "production"}
    assert stack["jobs"]["up"]["environment"] == "${{ inputs.environment }}"
    up = step(stack, "up", "pulumi/actions@")
    assert up["with"]["command"] == "up" and up["with"]["policyPacks"] == "policy"


def test_no_secrets_in_conditions_and_actions_pinned_by_major():
    for path in WORKFLOWS.glob("*.yml"):
        text = path.read_text()
        for line in text.splitlines():
            if re.match(r"\s*if:", line):
                assert "secrets." not in line, f"{path.name}: {line.strip()}"
        for uses in re.findall(r"uses:\s*(\S+)", text):
            assert uses.startswith("./") or re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+", uses), f"{path.name}: {uses}"


def test_workflows_call_existing_igw_commands():
    for path in WORKFLOWS.glob("*.yml"):
        for command in re.findall(r"uv run igw (\w+)", path.read_text()):
            assert command in COMMANDS, f"{path.name}: igw {command}"
