"""Run the real `picker` CLI as a subprocess with files discovery (tests, benchmark)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from .envoy import wait_port
from ..loopback import free_port, local_host


def pool_manifest(name: str, *, namespace: str = "default", ports: tuple[int, ...] = (8000,),
                  selector: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "inference.networking.k8s.io/v1", "kind": "InferencePool",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"selector": {"matchLabels": selector or {"app": name}},
                 "targetPorts": [{"number": p} for p in ports],
                 "endpointPickerRef": {"name": f"{name}-epp", "port": {"number": 9002}}},
    }


def write_endpoints(path: Path, pods: list[dict[str, Any]]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump({"pods": pods}))
    os.replace(tmp, path)  # atomic: discovery never reads a half-written file


def write_manifests(path: Path, objects: list[dict[str, Any]]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(yaml.safe_dump_all(objects))
    os.replace(tmp, path)


class PickerProcess:
    def __init__(self, *, pool_name: str, manifests_dir: Path, endpoints_file: Path,
                 config: dict[str, Any] | None = None, api_keys_file: Path | None = None,
                 extra_args: list[str] | None = None, env: dict[str, str] | None = None,
                 secure: bool = False) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="picker-"))
        self.config_path = self.dir / "picker.yaml"
        self.config_path.write_text(yaml.safe_dump(config or {}))
        self.grpc_port, self.health_port, self.metrics_port = free_port(), free_port(), free_port()
        args = [sys.executable, "-m", "endpoint_picker.main", "--pool-name", pool_name, "--pool-namespace", "default",
                "--config-file", str(self.config_path), "--discovery", "files",
                "--manifests-dir", str(manifests_dir), "--endpoints-file", str(endpoints_file),
                "--grpc-port", str(self.grpc_port), "--grpc-health-port", str(self.health_port),
                "--metrics-port", str(self.metrics_port), "--bind-address", local_host(), "--log-level", "warning"]
        if api_keys_file:
            args += ["--api-keys-file", str(api_keys_file)]
        # Tests and benchmarks talk cleartext unless they test TLS (the picker's default).
        args.append(f"--secure-serving={'true' if secure else 'false'}")
        args += extra_args or []
        self.log_path = self.dir / "picker.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
        try:
            wait_port(local_host(), self.grpc_port)
        except TimeoutError:
            self.stop()
            raise RuntimeError("picker did not start:\n" + self.log())

    @property
    def address(self) -> str:
        return f"{local_host()}:{self.grpc_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def stop(self, timeout: float = 10) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode
