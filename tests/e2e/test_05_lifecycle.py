"""Process lifecycle: foreground `igw up` stops everything on Ctrl-C; a failed startup and a busy
port leave nothing behind. Uses the session's render, cut down to one replica."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

from igw.local.process import free_address_base, free_port

from .conftest import ROOT, igw, pid_alive, served_pod


def _one_replica_render(local_stack, tmp_path: Path, edit=None) -> Path:
    src = local_stack.state_dir / "render" / "manifests"
    dst = tmp_path / "manifests"
    shutil.copytree(src, dst)
    for f in dst.glob("*-deployment-*-vllm-llama3-8b-instruct.yaml"):
        doc = yaml.safe_load(f.read_text())
        doc["spec"]["replicas"] = 1
        if edit:
            edit(doc)
        f.write_text(yaml.safe_dump(doc))
    return dst


def _pids(state_dir: Path) -> list[int]:
    st = json.loads((state_dir / "state.json").read_text())
    return [p["pid"] for p in st["processes"].values() if p["pid"]]


def test_foreground_ctrl_c_stops_everything(local_stack, tmp_path):
    manifests = _one_replica_render(local_stack, tmp_path)
    state_dir = tmp_path / "state"
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "igw.cli", "up", "--stack", "local", "--from-manifests", str(manifests),
                             "--port", str(port), "--state-dir", str(state_dir), "--address-base", free_address_base(1)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = []
    try:
        deadline = time.monotonic() + 90
        for line in proc.stdout:
            out.append(line)
            if "Press Ctrl-C" in line or time.monotonic() > deadline:
                break
        assert "Press Ctrl-C" in "".join(out), "".join(out)
        r = httpx.post(f"http://127.0.0.1:{port}/v1/completions", json={"model": "food-review", "prompt": "x",
                                                                         "max_tokens": 2}, timeout=30)
        assert r.status_code == 200 and served_pod(state_dir, r.json()["id"]) == "vllm-llama3-8b-instruct-0"
        pids = _pids(state_dir)
        assert len(pids) == 3  # one replica, one picker, Envoy
        proc.send_signal(signal.SIGINT)  # what Ctrl-C delivers to the foreground process
        rest, _ = proc.communicate(timeout=30)
        out.append(rest)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, "".join(out)
    assert "stopped in" in "".join(out)
    assert not [p for p in pids if pid_alive(p)]
    assert json.loads((state_dir / "state.json").read_text())["status"] == "stopped"


def test_failed_startup_leaves_nothing_behind(local_stack, tmp_path):
    def bad_flag(doc):  # the simulator rejects this value, like vLLM would
        doc["spec"]["template"]["spec"]["containers"][0]["args"] += ["--max-loras", "lots"]

    manifests = _one_replica_render(local_stack, tmp_path, bad_flag)
    state_dir = tmp_path / "state"
    r = igw("up", "--stack", "local", "--from-manifests", str(manifests), "--detach", "--port", str(free_port()),
            "--state-dir", str(state_dir), "--address-base", free_address_base(1), "--timeout", "30")
    assert r.returncode == 1
    text = r.stdout + r.stderr
    assert "exited with status" in text and "--max-loras" in text, text
    st = json.loads((state_dir / "state.json").read_text())
    assert st["status"] == "failed"
    time.sleep(0.2)
    assert not [p for p in _pids(state_dir) + [st["supervisor_pid"]] if pid_alive(p)]


def test_busy_gateway_port_is_reported_before_starting(local_stack, tmp_path):
    manifests = _one_replica_render(local_stack, tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = igw("up", "--stack", "local", "--from-manifests", str(manifests), "--port", str(port),
                "--state-dir", str(tmp_path / "state"), "--address-base", free_address_base(1))
    assert r.returncode == 1
    assert f"127.0.0.1:{port} for gateway listener" in r.stdout + r.stderr and "--port" in r.stdout + r.stderr


def test_down_without_a_stack_is_harmless(tmp_path):
    r = igw("down", "--stack", "local", "--state-dir", str(tmp_path / "nothing"))
    assert r.returncode == 0 and "no local stack" in r.stdout


def test_children_die_with_a_killed_supervisor(local_stack, tmp_path):
    """Even SIGKILL of the supervisor (no handler runs) leaves nothing: children carry
    PR_SET_PDEATHSIG, and `igw down` afterwards reports a clean state."""
    manifests = _one_replica_render(local_stack, tmp_path)
    state_dir = tmp_path / "state"
    r = igw("up", "--stack", "local", "--from-manifests", str(manifests), "--detach", "--port", str(free_port()),
            "--state-dir", str(state_dir), "--address-base", free_address_base(1))
    assert r.returncode == 0, r.stdout + r.stderr
    st = json.loads((state_dir / "state.json").read_text())
    pids = _pids(state_dir)
    assert len(pids) == 3 and all(pid_alive(p) for p in pids)
    import os

    os.kill(st["supervisor_pid"], signal.SIGKILL)
    deadline = time.monotonic() + 15
    while [p for p in pids if pid_alive(p)] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in pids if pid_alive(p)]
    d = igw("down", "--stack", "local", "--state-dir", str(state_dir))
    assert d.returncode == 0
