"""Overhead benchmark: Envoy alone vs Envoy + picker, on this machine.

    uv run python -m endpoint_picker.bench_overhead [--quick] [--json out.json]

Starts one Envoy serving 16 zero-work "model servers" (direct_response listeners on 127.0.1.x,
with a ~30 KB vLLM-style /metrics), the real `picker` process (files discovery), and two gateway
Envoys: one routing straight to the pool (round robin), one through the picker. Measures:
  * open loop at 500 req/s: latency p50/p99 both ways, added latency, the picker's own decision
    latency p50/p99 (from its histogram), picker CPU per 1,000 requests;
  * saturation (closed loop): requests/s both ways;
  * 220 KB prompts at concurrency 150: p50/p99 both ways;
  * scraping 100 endpoints every 50 ms: picker CPU (cores) with no traffic;
  * the transport floor: saturation through a do-nothing ext_proc server (testing/null_processor).
The load generator is this process (asyncio, keep-alive); it shares the 2 cores with the rest,
so absolute numbers are conservative.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from .envoy_bootstrap import build_bootstrap
from .http11 import HttpConnection
from .selfmetrics import histogram_quantile, parse_histogram
from .testing.envoy import EnvoyProcess, free_port
from .testing.picker import PickerProcess, pool_manifest, write_endpoints, write_manifests

CLK = os.sysconf("SC_CLK_TCK")


def metrics_text(i: int) -> str:
    lines = [
        f'vllm:num_requests_waiting{{model_name="m"}} {i % 3}',
        f'vllm:num_requests_running{{model_name="m"}} {i % 5}',
        f'vllm:kv_cache_usage_perc{{model_name="m"}} {0.1 + (i % 7) / 20}',
        'vllm:cache_config_info{block_size="16",num_gpu_blocks="20000"} 1.0',
    ]
    # Filler shaped like vLLM's latency histograms so the scrape parses a realistic page.
    for h in ("time_to_first_token_seconds", "time_per_output_token_seconds", "e2e_request_latency_seconds",
              "request_queue_time_seconds", "request_prefill_time_seconds", "request_decode_time_seconds"):
        lines.append(f"# HELP vllm:{h} Histogram.\n# TYPE vllm:{h} histogram")
        for le in ("0.001", "0.005", "0.01", "0.02", "0.04", "0.06", "0.08", "0.1", "0.25", "0.5", "0.75", "1.0",
                   "2.5", "5.0", "7.5", "10.0", "20.0", "40.0", "80.0", "+Inf"):
            lines.append(f'vllm:{h}_bucket{{engine="0",le="{le}",model_name="meta-llama/Llama-3.1-8B-Instruct"}} 12345.0')
    return "\n".join(lines) + "\n"


def backend_bootstrap(addresses: list[str]) -> dict[str, Any]:
    listeners = []
    for i, addr in enumerate(addresses):
        host, port = addr.rsplit(":", 1)
        routes = [
            {"match": {"prefix": "/metrics"}, "direct_response": {"status": 200, "body": {"inline_string": metrics_text(i)}}},
            {"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": {
                "inline_string": '{"id":"x","object":"text_completion","model":"m","choices":[{"text":"ok"}]}'}},
             "response_headers_to_add": [{"header": {"key": "x-inference-pod", "value": f"pod-{i}"}}]},
        ]
        listeners.append({
            "name": f"b{i}", "address": {"socket_address": {"address": host, "port_value": int(port)}},
            "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": f"b{i}",
                "route_config": {"max_direct_response_body_size_bytes": 1 << 20,
                                 "virtual_hosts": [{"name": "b", "domains": ["*"], "routes": routes}]},
                "http_filters": [
                    # Read the whole request first so large uploads complete before the reply.
                    {"name": "envoy.filters.http.buffer", "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer",
                        "max_request_bytes": 4 << 20}},
                    {"name": "envoy.filters.http.router", "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
            }}]}],
        })
    return {"static_resources": {"listeners": listeners}}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


class Load:
    """Keep-alive HTTP/1.1 load: open loop at a fixed rate or closed loop at fixed concurrency."""

    def __init__(self, port: int, body: bytes) -> None:
        self.port = port
        self.headers = {"Content-Type": "application/json"}
        self.body = body
        self.idle: list[HttpConnection] = []

    async def one(self, lat: list[float], errors: list[int], t0: float | None = None) -> None:
        conn = self.idle.pop() if self.idle else HttpConnection("127.0.0.1", self.port, timeout=60)
        t = time.perf_counter() if t0 is None else t0  # open loop: from the intended send time
        try:
            status, _, _ = await conn.request("POST", "/v1/completions", self.headers, self.body)
            if status == 200:
                lat.append(time.perf_counter() - t)
            else:
                errors.append(status)
            self.idle.append(conn)
        except Exception:  # noqa: BLE001 (count any failure)
            conn.close()
            errors.append(0)

    async def open_loop(self, rate: float, seconds: float, max_connections: int = 128) -> tuple[list[float], list[int], float]:
        """Requests start on a fixed schedule; at most max_connections in flight (latency counts
        the wait for a free connection, so an overloaded target shows up as latency)."""
        lat: list[float] = []
        errors: list[int] = []
        n = int(rate * seconds)
        slots = asyncio.Semaphore(max_connections)
        start = time.perf_counter()

        async def scheduled(at: float) -> None:
            async with slots:
                await self.one(lat, errors, at)

        tasks = []
        for i in range(n):
            at = start + i / rate
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(scheduled(at)))
        await asyncio.gather(*tasks)
        return lat, errors, time.perf_counter() - start

    async def closed_loop(self, concurrency: int, seconds: float, max_requests: int = 1_000_000) -> tuple[list[float], list[int], float]:
        lat: list[float] = []
        errors: list[int] = []
        deadline = time.perf_counter() + seconds
        count = [0]

        async def worker() -> None:
            while time.perf_counter() < deadline and count[0] < max_requests:
                count[0] += 1
                await self.one(lat, errors)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return lat, errors, time.perf_counter() - start

    def close(self) -> None:
        for c in self.idle:
            c.close()
        self.idle.clear()


def decision_quantiles(picker: PickerProcess) -> tuple[float, float, float]:
    text = httpx.get(f"http://127.0.0.1:{picker.metrics_port}/metrics", timeout=5).text
    buckets = parse_histogram(text, "picker_decision_duration_seconds")
    return histogram_quantile(0.5, buckets), histogram_quantile(0.99, buckets), buckets[-1][1] if buckets else 0


class Bench:
    """Backends + picker + the two gateway Envoys. Reused by benchmarks/overhead.py: keep
    `addrs`, `direct_port`, `via_port`, `direct`, `via`, `picker` and `close()` stable."""

    def __init__(self, n_backends: int, tmp: Path, config: dict[str, Any] | None = None,
                 request_body_mode: str = "FULL_DUPLEX_STREAMED") -> None:
        port = free_port()  # shared machines: other suites use 127.0.1.x:8000
        self.addrs = [f"127.0.1.{i + 1}:{port}" for i in range(n_backends)]
        self.backends = _start_backends(self.addrs, free_port())
        mdir = tmp / "manifests"
        mdir.mkdir(exist_ok=True)
        write_manifests(mdir / "pool.yaml", [pool_manifest("bench", ports=(port,))])
        eps = tmp / "endpoints.yaml"
        write_endpoints(eps, [{"name": f"pod-{i}", "address": a.split(":")[0], "labels": {"app": "bench"}, "ready": True}
                              for i, a in enumerate(self.addrs)])
        config = dict(config or {})
        config["ext_proc"] = {**config.get("ext_proc", {}), "request_body_mode": request_body_mode}
        self.picker = PickerProcess(pool_name="bench", manifests_dir=mdir, endpoints_file=eps, config=config)
        self.direct_port, self.via_port = free_port(), free_port()
        direct = build_bootstrap(self.direct_port, self.picker.address, endpoints=self.addrs, retries=0)
        hcm = direct["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        hcm["http_filters"] = hcm["http_filters"][1:]  # no ext_proc: Envoy's own round robin
        self.direct = EnvoyProcess(direct, self.direct_port, concurrency=1)
        self.via = EnvoyProcess(build_bootstrap(self.via_port, self.picker.address, endpoints=self.addrs, retries=0,
                                                request_body_mode=request_body_mode), self.via_port, concurrency=1)

    def close(self) -> None:
        for p in (self.via, self.direct):
            p.stop()
        self.picker.stop()
        self.backends.stop()


def _start_backends(addrs: list[str], probe_port: int) -> EnvoyProcess:
    boot = backend_bootstrap(addrs)
    # A loopback probe listener tells us when the backend Envoy is up.
    boot["static_resources"]["listeners"].append({**boot["static_resources"]["listeners"][0], "name": "probe",
                                                  "address": {"socket_address": {"address": "127.0.0.1", "port_value": probe_port}}})
    return EnvoyProcess(boot, probe_port, concurrency=1)


async def _null_processor_saturation(b: Bench, body: bytes, secs: float) -> dict[str, float]:
    import subprocess
    import sys

    from .testing.envoy import wait_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "endpoint_picker.testing.null_processor", str(port), b.addrs[0]])
    try:
        wait_port("127.0.0.1", port)
        listen = free_port()
        envoy = EnvoyProcess(build_bootstrap(listen, f"127.0.0.1:{port}", endpoints=b.addrs, retries=0), listen, concurrency=1)
        try:
            load = Load(listen, body)
            await load.closed_loop(8, 0.5)
            cpu0 = cpu_seconds(proc.pid)
            lat, err, el = await load.closed_loop(64, secs)
            cpu1 = cpu_seconds(proc.pid)
            load.close()
        finally:
            envoy.stop()
    finally:
        proc.terminate()
        proc.wait(10)
    out = summarize(lat, err, el)
    out["processor_cores"] = round((cpu1 - cpu0) / el, 2)
    out["processor_cpu_s_per_1000"] = round((cpu1 - cpu0) / max(1, len(lat)) * 1000, 3)
    return out


def summarize(lat: list[float], errors: list[int], elapsed: float) -> dict[str, float]:
    return {"requests": len(lat), "errors": len(errors), "rps": round(len(lat) / elapsed, 1),
            "p50_ms": round(pct(lat, 0.5) * 1000, 2), "p99_ms": round(pct(lat, 0.99) * 1000, 2)}


async def run(quick: bool) -> dict[str, Any]:
    secs = 3 if quick else 6
    results: dict[str, Any] = {}
    small = json.dumps({"model": "m", "prompt": "Write a haiku about load balancers.", "max_tokens": 16}).encode()
    big = json.dumps({"model": "m", "prompt": ("The quick brown fox jumps over the lazy dog. " * 5000)[:220_000]}).encode()
    with tempfile.TemporaryDirectory() as d:
        b = Bench(16, Path(d))
        try:
            await asyncio.sleep(1.0)  # first scrapes
            for name, port in (("direct", b.direct_port), ("picker", b.via_port)):  # warm up connections
                load = Load(port, small)
                await load.closed_loop(8, 0.5)
                load.close()
            # 500 req/s open loop.
            for name, port in (("direct", b.direct_port), ("picker", b.via_port)):
                load = Load(port, small)
                cpu0, d0 = cpu_seconds(b.picker.proc.pid), decision_quantiles(b.picker)[2]
                lat, err, el = await load.open_loop(500, secs)
                cpu1 = cpu_seconds(b.picker.proc.pid)
                load.close()
                results[f"rate500_{name}"] = summarize(lat, err, el)
                if name == "picker":
                    p50, p99, n = decision_quantiles(b.picker)
                    results["rate500_picker"]["picker_cpu_s_per_1000"] = round((cpu1 - cpu0) / max(1, len(lat)) * 1000, 3)
                    results["rate500_picker"]["picker_cores"] = round((cpu1 - cpu0) / el, 2)
                    results["rate500_decision_ms"] = {"p50": round(p50 * 1000, 3), "p99": round(p99 * 1000, 3), "count": n - d0}
            results["rate500_added_ms"] = {
                "p50": round(results["rate500_picker"]["p50_ms"] - results["rate500_direct"]["p50_ms"], 2),
                "p99": round(results["rate500_picker"]["p99_ms"] - results["rate500_direct"]["p99_ms"], 2)}
            # Saturation: closed loop.
            for name, port in (("direct", b.direct_port), ("picker", b.via_port)):
                load = Load(port, small)
                cpu0 = cpu_seconds(b.picker.proc.pid)
                lat, err, el = await load.closed_loop(64, secs)
                cpu1 = cpu_seconds(b.picker.proc.pid)
                load.close()
                results[f"saturation_{name}"] = summarize(lat, err, el)
                if name == "picker":
                    results["saturation_picker"]["picker_cores"] = round((cpu1 - cpu0) / el, 2)
                    results["saturation_picker"]["picker_cpu_s_per_1000"] = round((cpu1 - cpu0) / max(1, len(lat)) * 1000, 3)
            # 220 KB prompts at concurrency 150.
            for name, port in (("direct", b.direct_port), ("picker", b.via_port)):
                load = Load(port, big)
                lat, err, el = await load.closed_loop(150, secs, max_requests=3000)
                load.close()
                results[f"prompt220k_c150_{name}"] = summarize(lat, err, el)
            results["prompt220k_c150_added_ms"] = {
                "p50": round(results["prompt220k_c150_picker"]["p50_ms"] - results["prompt220k_c150_direct"]["p50_ms"], 2),
                "p99": round(results["prompt220k_c150_picker"]["p99_ms"] - results["prompt220k_c150_direct"]["p99_ms"], 2)}
            # Transport floor: the same Envoy config against a do-nothing ext_proc server.
            results["saturation_null_processor"] = await _null_processor_saturation(b, small, secs)
            p50, p99, _ = decision_quantiles(b.picker)
            results["decision_ms_all_runs"] = {"p50": round(p50 * 1000, 3), "p99": round(p99 * 1000, 3)}
        finally:
            b.close()
    # Idle scraping of 100 endpoints at 50 ms.
    with tempfile.TemporaryDirectory() as d:
        port = free_port()
        addrs = [f"127.0.2.{i + 1}:{port}" for i in range(100)]
        backends = _start_backends(addrs, free_port())
        mdir = Path(d) / "m"
        mdir.mkdir()
        write_manifests(mdir / "pool.yaml", [pool_manifest("idle", ports=(port,))])
        eps = Path(d) / "eps.yaml"
        write_endpoints(eps, [{"name": f"p{i}", "address": a.split(":")[0], "labels": {"app": "idle"}, "ready": True}
                              for i, a in enumerate(addrs)])
        picker = PickerProcess(pool_name="idle", manifests_dir=mdir, endpoints_file=eps)
        try:
            await asyncio.sleep(2)
            c0, t0 = cpu_seconds(picker.proc.pid), time.perf_counter()
            await asyncio.sleep(secs)
            cores = (cpu_seconds(picker.proc.pid) - c0) / (time.perf_counter() - t0)
            text = httpx.get(f"http://127.0.0.1:{picker.metrics_port}/metrics", timeout=5).text
            ages = [float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith("picker_metrics_age_seconds{")]
            results["scrape_100_endpoints_50ms"] = {"picker_cores": round(cores, 3), "endpoints": len(ages),
                                                    "max_metrics_age_ms": round(max(ages) * 1000, 1),
                                                    "metrics_page_bytes": len(metrics_text(0))}
        finally:
            picker.stop()
            backends.stop()
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="3 s per phase instead of 6 s")
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args()
    results = asyncio.run(run(args.quick))
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
