"""`igw up --stack external` for the external-model e2e modules: a free loopback range and gateway
port, API keys for three users, the fake providers' control APIs, `igw status`, and `igw down`
with no process left behind.

IGW_E2E_EXTERNAL_ADDRESS_BASE / IGW_E2E_EXTERNAL_PORT pin the range and port (e.g. to an
engineer's assigned range).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from igw.local.process import free_address_base, free_port

from .conftest import ROOT, igw, pid_alive

USERS = {"alice": "igw-ext-key-alice", "bob": "igw-ext-key-bob", "carol": "igw-ext-key-carol", "dave": "igw-ext-key-dave"}
POD_PORTS = (8000, 8443, 8444)
PODS = 8


class ExternalStack:
    """A running `igw up --stack external` (from a copy of the committed stack file)."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.stacks = tmp / "stacks"
        self.stacks.mkdir()
        shutil.copy(ROOT / "stacks" / "Pulumi.external.yaml", self.stacks / "Pulumi.external.yaml")
        self.state_dir = tmp / "state"
        self.keys = tmp / "keys.yaml"
        self.keys.write_text("".join(f"{hashlib.sha256(k.encode()).hexdigest()}: {u}\n" for u, k in USERS.items()))
        self.port = int(os.environ.get("IGW_E2E_EXTERNAL_PORT") or free_port())
        self.address_base = os.environ.get("IGW_E2E_EXTERNAL_ADDRESS_BASE") or free_address_base(PODS, POD_PORTS)
        self.url = f"http://127.0.0.1:{self.port}"
        self.http = httpx.Client(timeout=30)

    def up_args(self, *extra: str) -> list[str]:
        return ["up", "--stack", "external", "--stacks-dir", str(self.stacks), "--port", str(self.port),
                "--state-dir", str(self.state_dir), "--address-base", self.address_base,
                "--api-keys-file", str(self.keys), "--timeout", "120", *extra]

    def up(self, *extra: str, timeout: float = 240) -> subprocess.CompletedProcess:
        return igw(*self.up_args(*extra), timeout=timeout)

    def up_background(self) -> subprocess.Popen:
        """An `igw up` applying an update, left running (it can be interrupted)."""
        return subprocess.Popen([sys.executable, "-m", "igw.cli", *self.up_args()], cwd=ROOT, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def state(self) -> dict[str, Any]:
        return json.loads((self.state_dir / "state.json").read_text())

    def status(self) -> tuple[int, dict[str, Any]]:
        r = igw("status", "--stack", "external", "--state-dir", str(self.state_dir), "--json", "--stacks-dir", str(self.stacks))
        assert r.returncode in (0, 3), r.stderr
        return r.returncode, json.loads(r.stdout)

    def endpoint(self, report: dict[str, Any], name: str) -> dict[str, Any]:
        return next(e for e in report["endpoints"] if e["name"] == name)

    def control(self, endpoint: str) -> str:
        """The fake provider's control URL of an external endpoint."""
        for p in self.state()["processes"].values():
            if p.get("kind") == "egress-proxy" and p.get("endpoint") == endpoint:
                return p["provider"]["control"]
        raise KeyError(endpoint)

    def fake(self, endpoint: str, **change: Any) -> dict[str, Any]:
        """Change the endpoint's fake provider (``delay_ms``, ``down``, ``expected_key``...) or, with
        no change, read its state."""
        base = self.control(endpoint)
        if change:
            self.http.post(f"{base}/fake/control", json=change).raise_for_status()
        return self.http.get(f"{base}/fake/state").json()

    def edit(self, old: str, new: str) -> None:
        """Change the stack file the next `igw up` renders."""
        f = self.stacks / "Pulumi.external.yaml"
        text = f.read_text()
        assert text.count(old) == 1, old
        f.write_text(text.replace(old, new))

    def down(self) -> None:
        st = self.state()
        pids = [p["pid"] for p in st["processes"].values()] + [st["supervisor_pid"]]
        pids += [p["provider"]["pid"] for p in st["processes"].values() if p.get("provider")]
        d = igw("down", "--stack", "external", "--state-dir", str(self.state_dir))
        self.http.close()
        assert d.returncode == 0, d.stderr
        assert not [pid for pid in pids if pid_alive(pid)], "processes left behind"
