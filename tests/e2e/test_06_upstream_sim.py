"""The same stack on the upstream simulator, llm-d-inference-sim (Go), instead of vllm-sim.

`IGW_UPSTREAM_SIM=/path/to/llm-d-inference-sim` selects it for `igw up` (each replica behind an
igw.local.forward on its pod address, since that binary cannot bind one address). Without the
variable the test tries `go install ...@v0.9.2` once (outcome cached in
.igw/cache/upstream-sim.json) and skips with go's own error when that fails; it never vendors.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from igw.local.process import free_address_base, free_port

from .conftest import ROOT, igw, pid_alive

MODULE = "github.com/llm-d/llm-d-inference-sim/cmd/llm-d-inference-sim"
VERSION = "v0.9.2"
CACHE = ROOT / ".igw" / "cache" / "upstream-sim.json"


def upstream_sim() -> tuple[str | None, str]:
    """(binary, reason it is missing)."""
    env = os.environ.get("IGW_UPSTREAM_SIM")
    if env:
        return (env, "") if Path(env).is_file() else (None, f"IGW_UPSTREAM_SIM={env}: no such file")
    try:
        cached = json.loads(CACHE.read_text())
        if cached.get("module") == f"{MODULE}@{VERSION}" and (not cached.get("binary") or Path(cached["binary"]).is_file()):
            return cached.get("binary"), cached.get("error", "")
    except (OSError, ValueError):
        pass
    go = shutil.which("go")
    binary, error = None, ""
    if go is None:
        error = "go toolchain not found (needed for go install of llm-d-inference-sim)"
    else:
        try:
            r = subprocess.run([go, "install", f"{MODULE}@{VERSION}"], capture_output=True, text=True, timeout=300)
            if r.returncode == 0:
                gobin = subprocess.run([go, "env", "GOBIN"], capture_output=True, text=True).stdout.strip() or \
                    str(Path(subprocess.run([go, "env", "GOPATH"], capture_output=True, text=True).stdout.strip()) / "bin")
                binary = str(Path(gobin) / "llm-d-inference-sim")
            else:
                error = (r.stderr or r.stdout).strip()
        except subprocess.TimeoutExpired:
            error = f"go install {MODULE}@{VERSION} timed out"
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    CACHE.write_text(json.dumps({"module": f"{MODULE}@{VERSION}", "binary": binary, "error": error,
                                 "tried_at": time.time()}, indent=1))
    return binary, error


def test_local_stack_on_llm_d_inference_sim(request, tmp_path):
    binary, why = upstream_sim()
    if binary is None:
        pytest.skip(f"llm-d-inference-sim unavailable: {why}")
    local_stack = request.getfixturevalue("local_stack")  # its render is reused
    state_dir = tmp_path / "state"
    port = free_port()
    env = {**os.environ, "IGW_UPSTREAM_SIM": binary}
    manifests = local_stack.state_dir / "render" / "manifests"
    r = subprocess.run([os.sys.executable, "-m", "igw.cli", "up", "--stack", "local", "--from-manifests", str(manifests),
                        "--detach", "--port", str(port), "--state-dir", str(state_dir), "--address-base", free_address_base()],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    try:
        assert r.returncode == 0, r.stdout + r.stderr
        assert "llm-d-inference-sim" in r.stdout
        url = f"http://127.0.0.1:{port}"
        c = httpx.Client(timeout=30)
        resp = c.post(url + "/v1/chat/completions", json={"model": "food-review", "max_tokens": 4,
                                                          "messages": [{"role": "user", "content": "hi"}]})
        assert resp.status_code == 200, resp.text
        assert resp.json()["model"] == "food-review"
        assert resp.headers.get("x-inference-pod", "").startswith("vllm-llama3-8b-instruct-")
        assert c.get(url + "/invoke/v1/models").status_code == 200
    finally:
        st = json.loads((state_dir / "state.json").read_text()) if (state_dir / "state.json").exists() else {}
        igw("down", "--stack", "local", "--state-dir", str(state_dir))
        assert not [p["pid"] for p in (st.get("processes") or {}).values() if pid_alive(p["pid"])]


def test_forwarder_exposes_a_server_on_a_pod_address(tmp_path):
    """The plumbing the upstream variant relies on, with a stand-in server (python -m http.server)."""
    target = free_port()
    listen = free_port()
    host = free_address_base(1, ports=(listen,)).rsplit(".", 1)[0] + ".10"
    (tmp_path / "health").write_text("ok")
    proc = subprocess.Popen([os.sys.executable, "-m", "igw.local.forward", f"{host}:{listen}", f"127.0.0.1:{target}",
                             "--", os.sys.executable, "-m", "http.server", str(target), "--bind", "127.0.0.1",
                             "--directory", str(tmp_path)], cwd=ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                r = httpx.get(f"http://{host}:{listen}/health", timeout=2)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "forwarder did not come up"
                time.sleep(0.1)
        assert r.status_code == 200 and r.text == "ok"
        proc.terminate()  # SIGTERM reaches the wrapped server, and the forwarder exits with it
        proc.wait(10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
    time.sleep(0.2)
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{target}/health", timeout=1)
