"""The real vLLM (CPU build) under the dev stack's rendered security context (issue #21).

The rendered model-server container (``vllm-llama3-8b-instruct`` of ``stacks/Pulumi.dev.yaml``)
is reproduced around a local process by ``tests/pod_sandbox.py``: UID/GID 10001 (no passwd
entry), fsGroup 10001, a read-only root, no capabilities, no new privileges, the rendered
environment (HOME, every cache, HF_HOME, HF_TOKEN_PATH) and the rendered volume mounts (the
emptyDirs ``/data``, ``/tmp``, ``/cache``, ``/adapters``, ``/dev/shm`` in memory, the token Secret
as a 0440 file). The tiny model the tier prepares is copied into ``/data`` (where the server
would have downloaded it: HF_HOME). The server is the same ``vllm.entrypoints.openai.api_server``
the image runs, with the tier's flags, and torch.compile as in a pod (the emptyDirs start empty,
so it compiles from scratch: start-up is the tier's plus the compile, bounded by the tier's
``START_TIMEOUT_S``).

It must serve a completion, and write only into the writable mounts: the same sandbox refuses a
write anywhere else (checked first), the server's log holds no refused write, and the host sees
nothing of the sandbox's root afterwards. Needs root (mount namespace, chroot, setpriv).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from igw.engine import manifest_of
from tests.conftest import rendered
from tests.pod_sandbox import PodSandbox

from .conftest import TIMINGS
from .server import START_TIMEOUT_S, ServerSpec, VllmServer

DEPLOYMENT = "vllm-llama3-8b-instruct"
HF_SECRET = "igw-dev-hf-token"
TOKEN = "hf_sandboxed_token_for_the_hardened_test"
UID = 10001
NET = os.environ.get("IGW_HARDENED_VLLM_NET", "127.0.70")
PORTS = range(52000, 53000)
REFUSED_WRITE = re.compile(r"Read-only file system|Permission denied|EROFS|EACCES")

PROBE = r"""
import errno, getpass, json, os
from huggingface_hub import get_token
writes = {}
for path in ["/probe", "/etc/probe", "/usr/probe", "/root/probe", "/run/probe", "/var/run/secrets/huggingface/probe",
             "/cache/probe", "/tmp/probe", "/data/probe", "/adapters/probe", "/dev/shm/probe"]:
    try:
        with open(path, "w") as f:
            f.write("x")
        os.remove(path)
        writes[path] = "written"
    except OSError as e:
        writes[path] = errno.errorcode[e.errno]
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line)
print(json.dumps({"uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(), "user": getpass.getuser(),
                  "home": os.path.expanduser("~"), "token": get_token(), "writes": writes,
                  "status": {k: status[k].strip() for k in ("CapEff", "CapBnd", "CapPrm", "NoNewPrivs")}}))
"""


def _require(what: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"hardened real-vLLM test under CI=true: {what}", pytrace=False)
    pytest.skip(what)


def _free_address() -> tuple[str, int]:
    rng = random.Random()
    for _ in range(50):
        host, port = f"{NET}.{rng.randrange(2, 250)}", rng.choice(PORTS)
        with socket.socket() as s:
            try:
                s.bind((host, port))
                return host, port
            except OSError:
                continue
    raise RuntimeError(f"no free address in {NET}.0/24, ports {PORTS.start}-{PORTS.stop - 1}")


def _bind_back(info: dict) -> list[Path]:
    """What the process reads from under /root (hidden by the sandbox): the vLLM environment and
    the interpreter its pyvenv.cfg names."""
    env_dir = Path(info["env_dir"])
    home = next(line.split("=", 1)[1].strip() for line in (env_dir / "pyvenv.cfg").read_text().splitlines()
                if line.startswith("home"))
    return sorted({env_dir, Path(home).parent})


def _process_tree(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout.split()
    return [pid] + [p for child in out for p in _process_tree(int(child))]


def _status(pid: int) -> dict[str, str]:
    text = Path(f"/proc/{pid}/status").read_text()
    return {k: v.strip() for k, v in (line.split(":", 1) for line in text.splitlines() if ":" in line)}


@pytest.fixture(scope="module")
def sandbox_parts(vllm_env, tmp_path_factory):
    info = vllm_env
    if os.geteuid() != 0 or not (shutil.which("unshare") and shutil.which("setpriv") and shutil.which("chroot")):
        _require("needs root with unshare, chroot and setpriv (util-linux) to reproduce the pod's security context")
    deployment = manifest_of(rendered("dev").one("kubernetes:apps/v1:Deployment", DEPLOYMENT).inputs)
    sandbox = PodSandbox.from_deployment(deployment, "vllm", {HF_SECRET: {"token": TOKEN}})
    workdir = tmp_path_factory.mktemp("hardened-vllm")
    sandbox.prepare(workdir)
    model_root = Path(info["model_root"])
    data = workdir / "volumes" / "data" / "tiny"
    shutil.copytree(model_root / "model", data / "model")
    shutil.copy(model_root / "chat_template.jinja", data / "chat_template.jinja")
    for path in [data, *data.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    extra_env = {"PATH": f"{info['env_dir']}/bin:/usr/local/bin:/usr/bin:/bin", **info["process_env"]}
    return info, sandbox, workdir, _bind_back(info), extra_env


def test_rendered_context_is_what_the_sandbox_applies(sandbox_parts):
    _, sandbox, *_ = sandbox_parts
    assert (sandbox.uid, sandbox.gid, sandbox.fs_group) == (UID, UID, UID)
    assert sandbox.read_only_root and sandbox.no_new_privs and sandbox.drop_all_capabilities
    assert {m.path: (m.kind, m.read_only) for m in sandbox.mounts} == {
        "/data": ("emptyDir", False), "/dev/shm": ("memory", False), "/tmp": ("emptyDir", False),
        "/cache": ("emptyDir", False), "/var/run/secrets/huggingface": ("secret", True), "/adapters": ("emptyDir", False),
    }
    assert {k: sandbox.env[k] for k in ("HOME", "USER", "HF_HOME", "HF_TOKEN_PATH")} == {
        "HOME": "/cache", "USER": "model-server", "HF_HOME": "/data", "HF_TOKEN_PATH": "/var/run/secrets/huggingface/token",
    }


def test_sandbox_refuses_writes_outside_the_writable_mounts(sandbox_parts):
    info, sandbox, workdir, bind_back, extra_env = sandbox_parts
    argv = sandbox.argv(workdir, [info["python"], "-c", PROBE], bind_back, extra_env)
    run = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=workdir)
    assert run.returncode == 0, run.stderr[-2000:]
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert (seen["uid"], seen["gid"], seen["groups"], seen["user"], seen["home"]) == (UID, UID, [UID], "model-server", "/cache")
    assert seen["token"] == TOKEN  # huggingface_hub reads the mounted file HF_TOKEN_PATH names
    assert seen["status"] == {"CapEff": "0" * 16, "CapBnd": "0" * 16, "CapPrm": "0" * 16, "NoNewPrivs": "1"}
    assert seen["writes"] == {
        "/probe": "EROFS", "/etc/probe": "EROFS", "/usr/probe": "EROFS", "/root/probe": "EROFS", "/run/probe": "EROFS",
        "/var/run/secrets/huggingface/probe": "EROFS",
        "/cache/probe": "written", "/tmp/probe": "written", "/data/probe": "written", "/adapters/probe": "written",
        "/dev/shm/probe": "written",
    }


def test_real_vllm_serves_under_the_rendered_security_context(sandbox_parts):
    info, sandbox, workdir, bind_back, extra_env = sandbox_parts
    host, port = _free_address()
    spec = ServerSpec("hardened", host, port, adapters=())
    inside = {**info, "model_dir": "/data/tiny/model", "chat_template": "/data/tiny/chat_template.jinja"}
    argv = sandbox.argv(workdir, spec.argv(inside), bind_back, extra_env)
    server = VllmServer(spec, workdir / "vllm-hardened.log", inside)
    t0 = time.monotonic()
    with open(server.log_path, "wb") as log:
        server.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=workdir)
    server.started_at = t0
    try:
        server.wait_ready(t0 + START_TIMEOUT_S)
        TIMINGS["hardened vLLM start-up (cold compile caches)"] = server.ready_after_s
        tree = _process_tree(server.proc.pid)
        for pid in tree:
            st = _status(pid)
            assert st["Uid"].split() == [str(UID)] * 4 and st["CapEff"] == "0" * 16 and st["NoNewPrivs"] == "1", (pid, st)
        r = httpx.post(f"{server.url}/v1/completions", timeout=120,
                       json={"model": "tiny", "prompt": "The hardened server says", "max_tokens": 8, "ignore_eos": True})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["usage"]["completion_tokens"] == 8 and body["choices"][0]["text"]
    finally:
        server.stop()
    log = server.log_path.read_text(errors="replace")
    refused = [line for line in log.splitlines() if REFUSED_WRITE.search(line)]
    assert refused == [], "the server tried to write outside its writable mounts:\n" + "\n".join(refused)
    volumes = workdir / "volumes"
    written = {m.name: [p for p in (volumes / m.name).rglob("*")] for m in sandbox.mounts if m.kind == "emptyDir"}
    assert written["cache"] and written["tmp"], "the compile and library caches land in the cache and tmp emptyDirs"
    foreign = [str(p) for paths in written.values() for p in paths if p.stat().st_uid not in (0, UID)]
    assert foreign == []
    assert list((workdir / "root").iterdir()) == []  # the sandbox's root never reached the host
    print("written: " + ", ".join(f"{name} {sum(p.stat().st_size for p in paths if p.is_file()) / 1e6:.1f} MB"
                                  for name, paths in written.items()))
