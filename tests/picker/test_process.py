"""The `picker` process itself: health services, readiness gating, SIGTERM drain, CLI errors."""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
import time

import grpc
import orjson
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as pb_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from endpoint_picker.testing.picker import PickerProcess, pool_manifest, write_endpoints, write_manifests

from .test_servicer import body_msgs, headers_msg

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def status(port: int, service: str) -> int:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        return health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=service), timeout=3).status


def wait_status(port: int, service: str, want: int, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if status(port, service) == want:
            return
        time.sleep(0.05)
    raise AssertionError(f"{service!r} never became {want}")


def test_readiness_waits_for_discovery(tmp_path):
    mdir = tmp_path / "m"
    mdir.mkdir()
    eps = tmp_path / "eps.yaml"
    write_endpoints(eps, [{"name": "a", "address": "127.0.9.1", "labels": {"app": "p"}, "ready": True}])
    p = PickerProcess(pool_name="p", manifests_dir=mdir, endpoints_file=eps)
    try:
        wait_status(p.health_port, "liveness", SERVING)
        for svc in ("", "readiness", "envoy.service.ext_proc.v3.ExternalProcessor"):
            assert status(p.health_port, svc) == NOT_SERVING  # no InferencePool yet
        write_manifests(mdir / "pool.yaml", [pool_manifest("p")])
        for svc in ("", "readiness", "envoy.service.ext_proc.v3.ExternalProcessor"):
            wait_status(p.health_port, svc, SERVING)
    finally:
        p.stop()


def test_sigterm_reports_not_ready_and_drains_open_streams(tmp_path):
    mdir = tmp_path / "m"
    mdir.mkdir()
    write_manifests(mdir / "pool.yaml", [pool_manifest("p")])
    eps = tmp_path / "eps.yaml"
    write_endpoints(eps, [{"name": "a", "address": "127.0.9.2", "labels": {"app": "p"}, "ready": True}])
    p = PickerProcess(pool_name="p", manifests_dir=mdir, endpoints_file=eps, extra_args=["--drain-timeout", "10"])
    try:
        wait_status(p.health_port, "readiness", SERVING)
        outbox: queue.Queue = queue.Queue()
        body = orjson.dumps({"model": "m", "prompt": "hello"})
        msgs = [headers_msg("/v1/completions"), *body_msgs(body, 10)]

        def requests():
            yield msgs[0]
            yield msgs[1]
            outbox.get()  # hold the stream open mid-body until the test says go
            yield from msgs[2:]

        results: list = []
        with grpc.insecure_channel(p.address) as ch:
            call = pb_grpc.ExternalProcessorStub(ch).Process(requests(), timeout=20)
            reader = threading.Thread(target=lambda: results.extend(call))
            reader.start()
            time.sleep(0.3)
            p.proc.send_signal(signal.SIGTERM)
            wait_status(p.health_port, "readiness", NOT_SERVING)
            assert status(p.health_port, "liveness") == SERVING  # still alive while draining
            outbox.put("go")
            reader.join(10)
        assert results and results[0].HasField("request_headers")  # the open stream completed
        assert p.proc.wait(10) == 0
    finally:
        p.stop()


def test_invalid_config_exits_2_with_path(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("scheduling: {scorers: [{type: nope-scorer}]}\n")
    r = subprocess.run([sys.executable, "-m", "endpoint_picker.main", "--pool-name", "p", "--config-file", str(cfg),
                        "--discovery", "files", "--manifests-dir", str(tmp_path)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "scheduling.scorers[0].type: unknown scorer type 'nope-scorer'" in r.stderr
