"""End-to-end tier: `igw up --stack local --detach` once per session, the real `openai` client
through Envoy → picker → simulated replicas, `igw down` at the end (and no process left behind).

The stack runs on a free loopback range (127.0.N.x, N picked at random and checked), a free
gateway port and a temporary state dir, so it collides neither with a developer's
`igw up --stack local` (127.0.1.x, :8080) nor with another test session running at the same time.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import httpx
import openai
import pytest

from igw.local.process import free_address_base, free_port

ROOT = Path(__file__).resolve().parents[2]
BASE_MODEL = "meta-llama/Llama-3.1-8B-Instruct"
POOL = "vllm-llama3-8b-instruct"


# IGW_E2E_ADDRESS_BASE / IGW_E2E_PORT pin the session stack (e.g. to an engineer's assigned range).
ADDRESS_BASE = os.environ.get("IGW_E2E_ADDRESS_BASE") or free_address_base()




def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        socket.create_connection((host, port), 0.2).close()
        return True
    except OSError:
        return False


def igw(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "igw.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def pid_alive(pid: int | None) -> bool:
    from igw.local.state import alive

    return alive(pid)


class LocalStack:
    def __init__(self, state_dir: Path, port: int, source: list[str]) -> None:
        self.state_dir = state_dir
        self.port = port
        self.source = source      # igw up args selecting what runs (stack or --from-manifests)
        self.url = f"http://127.0.0.1:{port}"
        self.http = httpx.Client(timeout=30, limits=httpx.Limits(max_connections=64))

    # -- state
    def state(self) -> dict[str, Any]:
        return json.loads((self.state_dir / "state.json").read_text())

    def procs(self, kind: str) -> list[dict[str, Any]]:
        """Current processes of a kind (a replaced picker still draining is not counted)."""
        return [p for p in self.state()["processes"].values() if p["kind"] == kind and "retire_by" not in p]

    def sim_url(self, pod: str) -> str:
        p = self.state()["processes"][pod]
        return f"http://{p['address']}:{p['ports'][0]}"

    def sim_state(self, pod: str) -> dict[str, Any]:
        return self.http.get(self.sim_url(pod) + "/sim/state").json()

    def picker(self) -> dict[str, Any]:
        return next(p for p in self.procs("picker") if p["pool"] == POOL)

    # -- clients
    def client(self, **kw: Any) -> openai.OpenAI:
        """The real openai client; no automatic retries (tests assert on first answers)."""
        kw.setdefault("timeout", 30)
        return openai.OpenAI(base_url=self.url + "/v1", api_key="unused", max_retries=0, **kw)

    def source_address(self, user: str) -> str:
        """A loopback address of this user's own (127.0.N.100, .101, ... in the session's range):
        the gateway appends the connection's address to X-Forwarded-For and the picker keys
        per-user rate limits on it. x-user-id is only a label for the access log."""
        addresses = self.__dict__.setdefault("_addresses", {})
        if user not in addresses:
            net = ADDRESS_BASE.rsplit(".", 1)[0]
            addresses[user] = f"{net}.{100 + len(addresses) % 150}"
        return addresses[user]

    def http_for(self, user: str, **kw: Any) -> httpx.Client:
        """An httpx client whose connections come from `user`'s own address."""
        kw.setdefault("timeout", 30)
        return httpx.Client(transport=httpx.HTTPTransport(local_address=self.source_address(user)), **kw)

    def client_for(self, user: str, timeout: float = 30) -> openai.OpenAI:
        """The openai client as `user` (its own client address, see source_address)."""
        clients = self.__dict__.setdefault("_clients", {})
        if (user, timeout) not in clients:
            clients[(user, timeout)] = self.client(http_client=self.http_for(user, timeout=timeout), timeout=timeout)
        return clients[(user, timeout)]

    # -- access log (Envoy flushes every 200 ms)
    def served_pod(self, response_id: str) -> str:
        return served_pod(self.state_dir, response_id)

    def pod_at(self, upstream: str) -> str:
        return pod_at(self.state_dir, upstream)

    def access_log(self, where: Callable[[dict[str, Any]], bool], expect: int, timeout: float = 10) -> list[dict]:
        path = self.state_dir / "logs" / "access.log"
        deadline = time.monotonic() + timeout
        rows: list[dict] = []
        while time.monotonic() < deadline:
            rows = [r for r in (json.loads(l) for l in path.read_text().splitlines() if l.strip()) if where(r)]
            if len(rows) >= expect:
                return rows
            time.sleep(0.1)
        return rows

    # -- waiting
    def wait_all_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.state()
            if st["status"] == "ready" and all(p["ready"] and p["running"] for p in st["processes"].values()
                                               if p["kind"] in ("simulator", "picker") and "retire_by" not in p):
                return
            time.sleep(0.1)
        raise AssertionError(f"stack not fully ready after {timeout}s: {json.dumps(self.state()['processes'], indent=1)}")


def access_rows(state_dir: Path) -> list[dict[str, Any]]:
    path = state_dir / "logs" / "access.log"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def pod_at(state_dir: Path, upstream: str) -> str:
    """The replica listening at an access log's `upstream` address ("" if none)."""
    procs = json.loads((state_dir / "state.json").read_text())["processes"]
    return next((name for name, p in procs.items() if p.get("address") and upstream in
                 {f"{p['address']}:{port}" for port in p.get("ports") or []}), "")


def served_pod(state_dir: Path, response_id: str, timeout: float = 10) -> str:
    """The pod that served a response, as Envoy recorded it: vLLM (and the simulator) name a
    response after the request's x-request-id (`chatcmpl-<id>`), which Envoy set and logged with the
    upstream it used. Real vLLM sends no header naming itself, so tests do not rely on one."""
    request_id = response_id.split("-", 1)[1]
    deadline = time.monotonic() + timeout
    while True:
        rows = [r for r in access_rows(state_dir) if r.get("request_id") == request_id]
        if rows or time.monotonic() > deadline:
            break
        time.sleep(0.1)  # Envoy flushes the access log every 200 ms
    assert len(rows) == 1, f"{len(rows)} access log entries for request {request_id}"
    return pod_at(state_dir, rows[0]["upstream"])


def run_load(fn: Callable[[int], Any], n: int, concurrency: int = 16, timeout: float = 120) -> list[Any]:
    """fn(i) for i in range(n) with bounded concurrency and a global time bound. Exceptions are
    returned, not raised."""
    def safe(i: int) -> Any:
        try:
            return fn(i)
        except Exception as e:  # noqa: BLE001 - the caller classifies failures
            return e

    with cf.ThreadPoolExecutor(concurrency) as ex:
        futs = [ex.submit(safe, i) for i in range(n)]
        done, pending = cf.wait(futs, timeout=timeout)
        for f in pending:
            f.cancel()
        assert not pending, f"{len(pending)} of {n} requests did not finish within {timeout}s"
        return [f.result() for f in futs]


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory) -> LocalStack:
    tmp = tmp_path_factory.mktemp("igw-e2e")
    state_dir = tmp / "state"
    port = int(os.environ.get("IGW_E2E_PORT") or free_port())
    source = ["--stack", "local"]
    t = time.monotonic()
    r = igw("up", *source, "--detach", "--port", str(port), "--state-dir", str(state_dir),
            "--address-base", ADDRESS_BASE, "--time-scale", "0.05")
    assert r.returncode == 0, f"igw up failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    stack = LocalStack(state_dir, port, source)
    stack.up_seconds = time.monotonic() - t
    stack.up_output = r.stdout
    try:
        yield stack
    finally:
        st = stack.state()
        pids = [p["pid"] for p in st["processes"].values()] + [st["supervisor_pid"]]
        d = igw("down", "--stack", "local", "--state-dir", str(state_dir))
        stack.http.close()
        leftovers = [pid for pid in pids if pid_alive(pid)]
        for pid in leftovers:  # never leave anything behind, even when the assertion fails
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
        assert d.returncode == 0, d.stdout + d.stderr
        assert not leftovers, f"processes left after igw down: {leftovers}"
