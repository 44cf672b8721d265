"""Two real picker processes for one pool with leader election on a shared lease file: one
serves, the standby keeps its datastore warm (discovery and scrapes), and it takes over when the
leader is killed, frozen, or stopped; liveness is answered by the event loop that decides."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from endpoint_picker.main import App, parse_args
from endpoint_picker.config import load_config
from endpoint_picker.testing.envoy import free_port
from endpoint_picker.testing.picker import PickerProcess, pool_manifest, write_endpoints, write_manifests

from .conftest import POOL, next_host

pytestmark = pytest.mark.timeout(90)
LEASE_S, RETRY_S = 3, 0.5


def health(port: int, service: str, timeout: float = 1.0) -> str:
    """SERVING / NOT_SERVING, or the gRPC error code name (DEADLINE_EXCEEDED, UNAVAILABLE)."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        try:
            r = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError as e:
            return e.code().name
        return health_pb2.HealthCheckResponse.ServingStatus.Name(r.status)


def metric(p: PickerProcess, name: str) -> list[str]:
    text = httpx.get(f"http://127.0.0.1:{p.metrics_port}/metrics", timeout=5).text
    return [l for l in text.splitlines() if l.startswith(name)]


def wait_for(cond, timeout: float, what: str) -> float:
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(0.05)
    return time.monotonic() - t0


@pytest.fixture
def pair(tmp_path: Path, fleet):
    """Two pickers (a, b) for one pool of two fake backends, a leading."""
    port = free_port()
    mdir = tmp_path / "m"
    mdir.mkdir()
    write_manifests(mdir / "pool.yaml", [pool_manifest(POOL, ports=(port,))])
    pods = []
    for i in range(2):
        host = next_host()
        fleet.add(f"b{i}", host, port)
        pods.append({"name": f"b{i}", "namespace": "default", "address": host, "labels": {"app": POOL}, "ready": True})
    eps = tmp_path / "eps.yaml"
    write_endpoints(eps, pods)
    args = ["--ha-enable-leader-election", "--lease-file", str(tmp_path / "lease.json"),
            "--ha-lease-duration", str(LEASE_S), "--ha-retry-period", str(RETRY_S), "--drain-timeout", "5"]
    a = PickerProcess(pool_name=POOL, manifests_dir=mdir, endpoints_file=eps, extra_args=args)
    wait_for(lambda: health(a.health_port, "readiness") == "SERVING", 10, "first picker leads")
    b = PickerProcess(pool_name=POOL, manifests_dir=mdir, endpoints_file=eps, extra_args=args)
    yield a, b
    for p in (a, b):
        if p.proc.poll() is None:
            p.proc.send_signal(signal.SIGCONT)
        p.stop()


def _warm(p: PickerProcess) -> bool:
    ages = metric(p, "picker_metrics_age_seconds{")
    return len(ages) == 2 and all(float(l.rsplit(" ", 1)[1]) >= 0 for l in ages)


def test_standby_is_warm_but_not_ready(pair):
    a, b = pair
    wait_for(lambda: _warm(b), 10, "standby scraped both endpoints")
    assert health(b.health_port, "liveness") == "SERVING"
    assert health(b.health_port, "readiness") == "NOT_SERVING"
    assert health(b.health_port, "envoy.service.ext_proc.v3.ExternalProcessor") == "NOT_SERVING"
    assert metric(a, "picker_leader ") == ["picker_leader 1"] and metric(b, "picker_leader ") == ["picker_leader 0"]
    assert metric(b, "picker_ready_endpoints ") == ["picker_ready_endpoints 2"]


def test_standby_takes_over_when_the_leader_is_killed(pair):
    a, b = pair
    wait_for(lambda: _warm(b), 10, "standby warm")
    a.proc.kill()
    took = wait_for(lambda: health(b.health_port, "readiness") == "SERVING", LEASE_S + 3, "standby takes over")
    # The dead leader's lease has to run out: at most the lease duration plus one retry period.
    assert took <= LEASE_S + RETRY_S + 1.0, took
    assert metric(b, "picker_leader ") == ["picker_leader 1"]


def test_standby_takes_over_at_once_when_the_leader_stops_gracefully(pair):
    a, b = pair
    a.proc.send_signal(signal.SIGTERM)
    took = wait_for(lambda: health(b.health_port, "readiness") == "SERVING", LEASE_S + 3, "standby takes over")
    assert took <= RETRY_S + 1.0, took  # the leader released the Lease before draining
    assert a.proc.wait(10) == 0


def test_a_frozen_leader_fails_liveness_and_loses_the_lease_to_the_standby(pair):
    a, b = pair
    a.proc.send_signal(signal.SIGSTOP)
    assert health(a.health_port, "liveness", timeout=0.5) == "DEADLINE_EXCEEDED"
    wait_for(lambda: health(b.health_port, "readiness") == "SERVING", LEASE_S + 3, "standby takes over")
    a.proc.send_signal(signal.SIGCONT)
    # Thawed, it answers again but no longer claims the pool: one ready replica, never two.
    wait_for(lambda: health(a.health_port, "liveness") == "SERVING", 5, "thawed picker alive")
    assert health(a.health_port, "readiness") == "NOT_SERVING"
    assert health(b.health_port, "readiness") == "SERVING"


def test_liveness_is_answered_by_the_event_loop_that_makes_decisions(tmp_path):
    """In-process: while the picker's event loop is blocked (a stuck decision), the liveness
    check gets no answer, so a Kubernetes livenessProbe (or the local supervisor) fails it."""
    mdir = tmp_path / "m"
    mdir.mkdir()
    write_manifests(mdir / "pool.yaml", [pool_manifest(POOL)])
    hp = free_port()
    args = parse_args(["--pool-name", POOL, "--discovery", "files", "--manifests-dir", str(mdir),
                       "--grpc-port", str(free_port()), "--grpc-health-port", str(hp), "--metrics-port", str(free_port()),
                       "--bind-address", "127.0.0.1", "--secure-serving=false", "--drain-timeout", "0"])
    box: dict = {}

    def probe() -> None:  # another thread plays the kubelet while the picker runs on this one
        loop, app = box["loop"], box["app"]
        try:
            wait_for(lambda: health(hp, "liveness") == "SERVING", 10, "liveness up")
            loop.call_soon_threadsafe(time.sleep, 2.0)  # the loop is stuck for 2 s
            time.sleep(0.1)
            box["stuck"] = health(hp, "liveness", timeout=1.0)
            wait_for(lambda: health(hp, "liveness") == "SERVING", 5, "liveness back once the loop runs")
            box["back"] = True
        finally:
            loop.call_soon_threadsafe(app._stop.set)

    async def main() -> int:
        box["loop"], box["app"] = asyncio.get_running_loop(), App(args, load_config(None))
        threading.Thread(target=probe, daemon=True).start()
        return await box["app"].run()

    assert asyncio.run(main()) == 0
    assert box.get("stuck") == "DEADLINE_EXCEEDED" and box.get("back")
