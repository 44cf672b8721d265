"""Fixtures: fake model servers on 127.0.1.x, the real `picker` process, the real Envoy."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest

from endpoint_picker.envoy_bootstrap import SERVED_HEADER, build_bootstrap
from endpoint_picker.testing.backend import BackendFleet, FakeBackend
from endpoint_picker.testing.envoy import EnvoyProcess, free_port
from endpoint_picker.testing.picker import PickerProcess, pool_manifest, write_endpoints, write_manifests

POOL = "test-pool"
_hosts = itertools.count(1)


def next_host() -> str:
    """A fresh loopback address per backend so tests never share ports."""
    n = next(_hosts)
    return f"127.0.{1 + n // 250}.{1 + n % 250}"


@pytest.fixture(scope="session")
def fleet() -> Iterator[BackendFleet]:
    f = BackendFleet()
    yield f
    f.close()


@dataclass
class Stack:
    url: str
    picker: PickerProcess
    envoy: EnvoyProcess
    backends: dict[str, FakeBackend]
    manifests: Path
    endpoints_file: Path
    pods: list[dict[str, Any]]
    port: int
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=20))

    def post(self, path: str = "/v1/completions", **kw: Any) -> httpx.Response:
        return self.client.post(self.url + path, **kw)

    def picker_metrics(self) -> str:
        return httpx.get(f"http://127.0.0.1:{self.picker.metrics_port}/metrics", timeout=5).text

    def wait_fresh(self, timeout: float = 10) -> None:
        """Until every endpoint has been scraped at least once."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.picker_metrics()
            ages = [l for l in text.splitlines() if l.startswith("picker_metrics_age_seconds{")]
            if ages and all(not l.endswith(" -1") for l in ages):
                time.sleep(0.15)  # one more tick so the latest backend values are in
                return
            time.sleep(0.05)
        raise TimeoutError("endpoints never scraped:\n" + self.picker_metrics())

    def pod(self, response: httpx.Response) -> str:
        """The pod Envoy sent the request to (its own report, as against a real vLLM that names
        nobody); "" when Envoy reached no upstream."""
        served = response.headers.get(SERVED_HEADER, "")
        by_address = {f"{p['address']}:{self.port}": p["name"] for p in self.pods}
        return by_address.get(served, "")

    def close(self) -> None:
        self.client.close()
        self.envoy.stop()
        self.picker.stop()


@pytest.fixture
def stack(tmp_path: Path, fleet: BackendFleet) -> Iterator[Callable[..., Stack]]:
    made: list[Stack] = []

    def make(backends: dict[str, dict[str, Any]], *, config: dict[str, Any] | None = None,
             objects: list[dict[str, Any]] = (), refused: tuple[str, ...] = (), failure_mode_allow: bool = False,
             api_keys_file: Path | None = None, request_body_mode: str = "FULL_DUPLEX_STREAMED",
             response_body_mode: str = "FULL_DUPLEX_STREAMED", response_header_mode: str | None = None,
             secure: bool = False, picker_args: list[str] | None = None, message_timeout_s: float = 1000.0,
             max_message_timeout_s: float | None = None) -> Stack:
        mdir = tmp_path / f"manifests{len(made)}"
        mdir.mkdir()
        # One free port per stack (other suites on this machine also use 127.0.1.x:8000).
        port = free_port()
        write_manifests(mdir / "pool.yaml", [pool_manifest(POOL, ports=(port,)), *objects])
        pods, live = [], {}
        for name, state in backends.items():
            host = next_host()
            live[name] = fleet.add(name, host, port, **state)
            pods.append({"name": name, "namespace": "default", "address": host, "labels": {"app": POOL}, "ready": True})
        for name in refused:  # listed as ready but nothing listens: connections are refused
            pods.insert(0, {"name": name, "namespace": "default", "address": next_host(), "labels": {"app": POOL}, "ready": True})
        eps = tmp_path / f"endpoints{len(made)}.yaml"
        write_endpoints(eps, pods)
        cfg = dict(config or {})
        cfg.setdefault("ext_proc", {})
        cfg["ext_proc"] = {"request_body_mode": request_body_mode, "response_body_mode": response_body_mode, **cfg["ext_proc"]}
        picker = PickerProcess(pool_name=POOL, manifests_dir=mdir, endpoints_file=eps, config=cfg, api_keys_file=api_keys_file,
                               secure=secure, extra_args=picker_args)
        addrs = [f"{p['address']}:{port}" for p in pods]
        listen = free_port()
        boot = build_bootstrap(listen, picker.address, endpoints=addrs, failure_mode_allow=failure_mode_allow,
                               request_body_mode=request_body_mode, response_body_mode=response_body_mode,
                               response_header_mode=response_header_mode, picker_tls=secure, report_served=True,
                               message_timeout_s=message_timeout_s, max_message_timeout_s=max_message_timeout_s)
        try:
            envoy = EnvoyProcess(boot, listen)
        except Exception:
            picker.stop()
            raise
        s = Stack(f"http://127.0.0.1:{listen}", picker, envoy, live, mdir, eps, pods, port)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()
