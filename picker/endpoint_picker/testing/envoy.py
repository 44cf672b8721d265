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


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_port(host: str, port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{host}:{port} did not open within {timeout}s")


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
            wait_port("127.0.0.1", listener_port)
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
