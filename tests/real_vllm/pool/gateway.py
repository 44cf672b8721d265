"""Envoy + the real picker in front of the tier's vLLM servers (files discovery, one pool).

Each test builds the gateway it needs (its own scorer set) against the session's servers; both
processes start in well under a second. Envoy reports the endpoint that served a request in the
response header `x-gateway-destination-endpoint-served` (its %UPSTREAM_HOST%): real vLLM sends no
header naming itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, NamedTuple

import httpx

from endpoint_picker.envoy_bootstrap import SERVED_HEADER, build_bootstrap
from endpoint_picker.testing.envoy import EnvoyProcess, free_port
from endpoint_picker.testing.picker import PickerProcess, pool_manifest, write_endpoints, write_manifests

from ... import exposition
from ..server import VllmServer

POOL = "real-vllm"


class EndpointView(NamedTuple):
    """One endpoint as the picker last scraped it; `lora` in load.lora_lists' form."""
    waiting: float
    running: float
    kv: float
    lora: tuple[frozenset[str], frozenset[str], int]


@dataclass
class Gateway:
    url: str
    picker: PickerProcess
    envoy: EnvoyProcess
    servers: list[VllmServer]
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=120))

    def post(self, path: str, body: dict[str, Any], **kw: Any) -> httpx.Response:
        return self.client.post(self.url + path, json=body, **kw)

    @staticmethod
    def served(response: httpx.Response) -> str:
        value = response.headers.get(SERVED_HEADER, "")
        assert value, f"Envoy did not report the upstream: {dict(response.headers)}"
        return value

    def picker_metrics(self) -> str:
        # 30 s like the servers' pages: with both cores running vLLM engines the picker was once
        # not scheduled to answer within 5 s.
        return httpx.get(f"http://127.0.0.1:{self.picker.metrics_port}/metrics", timeout=30).text

    def view(self) -> dict[str, EndpointView]:
        """The picker's view of each endpoint (its picker_endpoint_* series), by endpoint key."""
        text = self.picker_metrics()
        one = lambda name: exposition.series(text, f"picker_endpoint_{name}")  # noqa: E731
        queue, running, kv, max_lora = one("queue_size"), one("running_requests"), one("kv_cache_usage"), one("max_lora")
        adapters = one("lora_adapter")
        lists = lambda key, state: frozenset(a for (ep, a, st) in adapters if ep == key and st == state)  # noqa: E731
        return {key: EndpointView(queue[(key,)], running[(key,)], kv[(key,)],
                                  (lists(key, "running"), lists(key, "waiting"), int(max_lora[(key,)])))
                for (key,) in queue}

    def wait_view(self, what: str, ok: Callable[[dict[str, EndpointView]], bool], timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while not ok(view := self.view()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the picker's view never showed {what} within {timeout_s} s: {view}")
            time.sleep(0.05)

    def wait_scraped_since(self, t0: float, interval_s: float, timeout: float = 20) -> None:
        """Until every endpoint's last successful scrape is younger than time.monotonic() - t0."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ages = [line.rsplit(" ", 1)[1] for line in self.picker_metrics().splitlines()
                    if line.startswith("picker_metrics_age_seconds{")]
            since = time.monotonic() - t0
            if len(ages) == len(self.servers) and all(0 <= float(a) < since for a in ages):
                time.sleep(2 * interval_s)  # and one more tick in case a scrape was in flight at t0
                return
            time.sleep(interval_s)
        raise TimeoutError("the picker did not scrape every endpoint in time:\n" + self.picker_metrics()
                           + "\npicker log:\n" + self.picker.log())

    def probe(self, read: Callable[[], Any], body: dict[str, Any]) -> tuple[httpx.Response, Any]:
        """One request through the gateway with the servers' state read before it, after the picker's
        next scrape, and after it: (response, that state) when the three reads agree, else
        (response, None): a held request was restarting and the decision may have seen another state."""
        t_before = time.monotonic()
        before = read()
        self.wait_scraped_since(t_before, 0.05)   # the picker's view is from after `before`
        between = read()
        r = self.post("/v1/completions", body)
        after = read()
        assert r.status_code == 200, r.text
        return r, (before if before == between == after else None)

    def close(self) -> None:
        self.client.close()
        self.envoy.stop()
        self.picker.stop()


def start_gateway(servers: list[VllmServer], workdir: Path, *, scorers: list[dict[str, Any]] | None = None,
                  scrape_interval_ms: int = 50) -> Gateway:
    """A pool of `servers` (same port, one address each) behind a picker and Envoy."""
    ports = {s.spec.port for s in servers}
    assert len(ports) == 1, f"an InferencePool has one target port; servers listen on {ports}"
    port = ports.pop()
    workdir.mkdir(parents=True, exist_ok=True)
    manifests = workdir / "manifests"
    manifests.mkdir(exist_ok=True)
    write_manifests(manifests / "pool.yaml", [pool_manifest(POOL, ports=(port,))])
    endpoints = workdir / "endpoints.yaml"
    write_endpoints(endpoints, [{"name": s.spec.name, "namespace": "default", "address": s.spec.host,
                                 "labels": {"app": POOL}, "ready": True} for s in servers])
    config: dict[str, Any] = {"scrape": {"interval_ms": scrape_interval_ms}}
    if scorers is not None:
        config["scheduling"] = {"scorers": scorers}
    picker = PickerProcess(pool_name=POOL, manifests_dir=manifests, endpoints_file=endpoints, config=config)
    listen = free_port()
    boot = build_bootstrap(listen, picker.address, endpoints=[s.key for s in servers], report_served=True)
    try:
        envoy = EnvoyProcess(boot, listen)
    except Exception:
        picker.stop()
        raise
    return Gateway(f"http://127.0.0.1:{listen}", picker, envoy, servers)
