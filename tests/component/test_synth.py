"""igw synth: the unchanged program under the mock engine, deterministic files, masked secrets."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from igw.engine import SECRET, run_program
from igw.stackfile import available_stacks
from igw.synth import write_outputs
from igw.stackfile import STACKS_DIR, read_stack

from ..conftest import rendered

REPO = Path(__file__).resolve().parents[2]


def igw(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "igw.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_synth_writes_resources_manifests_and_a_tree(tmp_path):
    result = igw("synth", "--stack", "dev", "--out", str(tmp_path / "dev"))
    assert result.returncode == 0, result.stderr
    assert "pulumi:pulumi:Stack" in result.stdout and "Resources:" in result.stdout
    resources = json.loads((tmp_path / "dev" / "resources.json").read_text())
    assert resources, "no resources rendered"
    assert all(set(r) == {"urn", "type", "name", "parent", "inputs"} for r in resources)
    assert [r["urn"] for r in resources] == sorted(r["urn"] for r in resources)
    platform = [r for r in resources if r["type"] == "inference-gateway:platform:InferencePlatform"]
    assert platform and platform[0]["urn"].startswith("urn:pulumi:dev::inference-gateway::")
    for path in (tmp_path / "dev" / "manifests").glob("*.yaml"):
        obj = yaml.safe_load(path.read_text())
        assert {"apiVersion", "kind", "metadata"} <= set(obj), path.name


def test_two_renders_are_byte_identical(tmp_path):
    """In-process (imports are paid once): two fresh runs of the program write identical files."""
    for out in ("a", "b"):
        write_outputs(run_program("prod", read_stack("prod")), tmp_path / out)
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert files_a == files_b and len(files_a) > 2
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


def test_secure_values_render_masked_never_as_ciphertext(tmp_path):
    write_outputs(rendered("prod"), tmp_path)
    text = (tmp_path / "resources.json").read_text() + "".join(p.read_text() for p in (tmp_path / "manifests").glob("*"))
    secure = [v["secure"] for v in read_stack("prod").values() if isinstance(v, dict) and "secure" in v]
    assert secure, "the prod stack is expected to carry secure values"
    for value in secure:
        assert value not in text
    assert SECRET in text


def test_secret_inputs_are_masked_in_recorded_resources():
    config = dict(read_stack("dev"))
    config["inference-gateway:hfToken"] = {"secure": "v1:AAAA"}
    synthesis = run_program("dev-secret", config)
    dumped = json.dumps([r.inputs for r in synthesis.resources])
    assert "v1:AAAA" not in dumped
    secrets = [r for r in synthesis.resources if r.type == "kubernetes:core/v1:Secret"]
    for secret in secrets:
        for field in ("stringData", "data"):
            if secret.inputs.get(field) == SECRET:  # pulumi-kubernetes marks the whole field secret
                continue
            for value in (secret.inputs.get(field) or {}).values():
                assert value == SECRET, f"{secret.urn}: {field} is not masked"


@pytest.fixture
def broken_stacks(tmp_path) -> Path:
    shutil.copy(STACKS_DIR / "Pulumi.dev.yaml", tmp_path / "Pulumi.broken.yaml")
    doc = yaml.safe_load((tmp_path / "Pulumi.broken.yaml").read_text())
    doc["config"]["inference-gateway:gateways"][0]["class"] = "gke-l7-global-external-managed"
    doc["config"]["inference-gateway:cluster"] = {"min_master_version": "1.30.1"}
    (tmp_path / "Pulumi.broken.yaml").write_text(yaml.safe_dump(doc))
    return tmp_path


def test_broken_stack_exits_1_naming_the_fields_without_traceback(broken_stacks):
    result = igw("synth", "--stack", "broken", "--stacks-dir", str(broken_stacks), "--out", str(broken_stacks / "out"))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "gateways[0].class: 'gke-l7-global-external-managed' is not supported; use gke-l7-regional-external-managed or gke-l7-rilb" in result.stderr
    assert "cluster.min_master_version: '1.30.1' is too old; GKE Inference Gateway needs 1.32.3 or later" in result.stderr
    assert not (broken_stacks / "out").exists(), "no output may be written for invalid config"


def test_validate_checks_config_only(broken_stacks):
    assert igw("validate", "--stack", "dev").returncode == 0
    result = igw("validate", "--stack", "broken", "--stacks-dir", str(broken_stacks))
    assert result.returncode == 1 and "gateways[0].class" in result.stderr


def test_unknown_stack_lists_known_stacks():
    result = igw("validate", "--stack", "nope")
    assert result.returncode == 1
    assert f"no file stacks/Pulumi.nope.yaml; known stacks: {', '.join(available_stacks())}" in result.stderr
    assert "dev" in available_stacks() and "prod" in available_stacks()


def test_program_itself_refuses_bad_config_before_any_resource():
    """`pulumi up` runs the same __main__.py: it fails with the same wording and registers nothing."""
    import pulumi

    config = dict(read_stack("dev"))
    config["inference-gateway:cluster"] = {"networking_mode": "ROUTES"}
    with pytest.raises(pulumi.RunError, match=r"cluster.networking_mode: 'ROUTES' is not supported"):
        run_program("dev-bad", config)
