"""Process plumbing: start/stop subprocesses with logs, CPU seconds from /proc, Envoy configs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from endpoint_picker.envoy_bootstrap import envoy_binary  # noqa: F401 (re-exported)
from endpoint_picker.testing.envoy import wait_port  # noqa: F401 (re-exported)
from endpoint_picker.loopback import free_port, local_host, pod_host  # noqa: F401 (re-exported)

CLK_TCK = os.sysconf("SC_CLK_TCK")
WORK_DIR = Path(__file__).parent / ".work"


def cpu_seconds(pid: int) -> float:
    """user+system CPU seconds of a process (all threads) and its reaped children."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # after the ")" field 3 (state) is index 0: utime=14 -> 11, stime=15 -> 12, cutime 13, cstime 14
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / CLK_TCK


class Proc:
    """A subprocess with its output in a log file under benchmarks/.work/logs/."""

    def __init__(self, name: str, args: Sequence[str], *, env: dict[str, str] | None = None,
                 wait_for: tuple[str, int] | None = None, timeout: float = 20.0) -> None:
        logs = WORK_DIR / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.log_path = logs / f"{name}-{os.getpid()}-{int(time.time() * 1000) % 10**8}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(list(args), stdout=self._log, stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
        if wait_for is not None:
            self._wait_listening(*wait_for, timeout)

    def _wait_listening(self, host: str, port: int, timeout: float) -> None:
        """Until host:port accepts; a process that exits first fails at once, with its log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.stop()
                raise RuntimeError(f"{self.name} exited with code {code} before listening on {host}:{port}:\n{self.log()}")
            try:
                wait_port(host, port, 0.2)
                return
            except TimeoutError:
                continue
        self.stop()
        raise RuntimeError(f"{self.name} did not listen on {host}:{port} within {timeout:.0f} s:\n{self.log()}")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def wait_line(self, text: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log_path.read_text(errors="replace"):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} did not print {text!r}:\n{self.log()}")

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self._log.closed:
            self._log.close()


def python() -> str:
    return sys.executable


def _socket(addr: str) -> dict[str, Any]:
    host, _, port = addr.rpartition(":")
    return {"socket_address": {"address": host, "port_value": int(port)}}


def direct_bootstrap(listener_port: int, endpoints: Sequence[str], lb: str = "ROUND_ROBIN",
                     route_timeout_s: float = 600.0) -> dict[str, Any]:
    """Envoy without a picker: one STATIC cluster with a built-in load balancer (a k8s Service
    behaves like ROUND_ROBIN / RANDOM; LEAST_REQUEST is Envoy's power-of-two-choices)."""
    router = {"name": "envoy.filters.http.router",
              "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "direct", "codec_type": "AUTO", "stream_idle_timeout": f"{route_timeout_s}s",
        "route_config": {"virtual_hosts": [{"name": "pool", "domains": ["*"], "routes": [
            {"match": {"prefix": "/"}, "route": {"cluster": "pool", "timeout": f"{route_timeout_s}s"}}]}]},
        "http_filters": [router],
    }
    cluster = {
        "name": "pool", "type": "STATIC", "connect_timeout": "1s", "lb_policy": lb,
        # A k8s Service has no connection cap; keep Envoy's circuit breakers out of the way.
        "circuit_breakers": {"thresholds": [{"max_connections": 100000, "max_pending_requests": 100000,
                                             "max_requests": 100000}]},
        "load_assignment": {"cluster_name": "pool", "endpoints": [
            {"lb_endpoints": [{"endpoint": {"address": _socket(e)}} for e in endpoints]}]},
    }
    return {"static_resources": {
        "listeners": [{"name": "http", "address": {"socket_address": {"address": local_host(), "port_value": listener_port}},
                       "per_connection_buffer_limit_bytes": 16 * 1024 * 1024,
                       "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                                       "typed_config": hcm}]}]}],
        "clusters": [cluster]}}


def raise_circuit_breakers(bootstrap: dict[str, Any]) -> dict[str, Any]:
    for c in bootstrap["static_resources"]["clusters"]:
        c.setdefault("circuit_breakers", {"thresholds": [{"max_connections": 100000, "max_pending_requests": 100000,
                                                          "max_requests": 100000}]})
    return bootstrap


def envoy_version() -> str:
    try:
        out = subprocess.run([envoy_binary(), "--version"], capture_output=True, text=True, timeout=20).stdout
        return out.strip().split("version:")[-1].strip() if "version:" in out else out.strip()
    except Exception as e:  # noqa: BLE001
        return f"unknown ({e})"
