"""Run a real Envoy process from a bootstrap dict (tests, benchmark, local runner)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from ..envoy_bootstrap import envoy_binary
from ..loopback import free_port, local_host  # noqa: F401 (free_port re-exported: its historical home)


def wait_port(host: str, port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{host}:{port} did not open within {timeout}s")


def _listener_host(bootstrap: dict[str, Any], port: int) -> str:
    """The address of the bootstrap's listener on `port` (0.0.0.0 is reached on 127.0.0.1)."""
    for listener in (bootstrap.get("static_resources") or {}).get("listeners") or []:
        sa = (listener.get("address") or {}).get("socket_address") or {}
        if sa.get("port_value") == port:
            host = sa.get("address", "127.0.0.1")
            return "127.0.0.1" if host in ("0.0.0.0", "::") else host
    return "127.0.0.1"


class EnvoyProcess:
    def __init__(self, bootstrap: dict[str, Any], listener_port: int, *, concurrency: int = 1, log_level: str = "warning"):
        self.dir = tempfile.mkdtemp(prefix="envoy-")
        self.config_path = os.path.join(self.dir, "envoy.json")
        with open(self.config_path, "w") as f:
            json.dump(bootstrap, f)
        self.port = listener_port
        self.log_path = os.path.join(self.dir, "envoy.log")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [envoy_binary(), "-c", self.config_path, "--concurrency", str(concurrency), "-l", log_level,
             "--base-id", str(listener_port), "--disable-hot-restart"],
            stdout=self._log, stderr=subprocess.STDOUT,
        )
        try:
            wait_port(_listener_host(bootstrap, listener_port), listener_port)
        except TimeoutError:
            self.stop()
            raise RuntimeError("envoy did not start:\n" + self.log())

    def log(self) -> str:
        return Path(self.log_path).read_text(errors="replace")[-20000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
