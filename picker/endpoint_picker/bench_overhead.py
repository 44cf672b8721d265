"""Overhead benchmark: Envoy alone vs Envoy + picker, on this machine.

    uv run python -m endpoint_picker.bench_overhead [--quick] [--json out.json]

One Envoy serves 16 zero-work "model servers" (direct_response listeners on 127.0.1.x, or IGW_LOOPBACK_NET, with a
vLLM-style /metrics page). In front of them: Envoy alone (round robin) and one gateway Envoy per
ext_proc server (see GATEWAYS): the real `picker` process (files discovery) in both request body
modes and on the former grpcio transport, and the do-nothing `testing/null_processor` in both
modes (the floor any ext_proc server pays through Envoy). Each load runs against Envoy alone and
then each gateway, back to back, so ratios come from one run:
  * rate500: open loop, 500 req/s, small prompts: added latency, decision latency, CPU;
  * saturation_c64: closed loop, 64 connections: requests/s (the capacity of one picker process
    is 1,000 / its ext_proc CPU ms per request);
  * prompt220k_rate100: 220 KB prompts, 100 req/s open loop: the per-request overhead when the
    machine keeps up (the reference measured TTFT overhead behind simulators, ~130 req/s);
  * prompt220k_c150: 220 KB prompts, closed loop at concurrency 150 with zero-work backends: a
    throughput test, latency = 150 / throughput;
  * scraping 100 endpoints every 50 ms: picker CPU (cores) with no traffic.
The load generator is this process (asyncio, keep-alive: testing/http_load.py); it shares the 2
cores with the rest, so absolute numbers are conservative.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from .envoy_bootstrap import build_bootstrap
from .selfmetrics import histogram_quantile, parse_histogram
from .testing.envoy import EnvoyProcess, wait_port
from .testing.http_load import Load, cpu_seconds, summarize
from .loopback import free_port, local_host, pod_host
from .testing.picker import PickerProcess, pool_manifest, write_endpoints, write_manifests


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


def decision_histogram(picker: PickerProcess) -> list[tuple[float, float]]:
    """Cumulative (le, count) buckets of the picker's decision latency histogram."""
    text = httpx.get(f"http://{local_host()}:{picker.metrics_port}/metrics", timeout=5).text
    return parse_histogram(text, "picker_decision_duration_seconds")


class PickerGateway:
    """One gateway Envoy in front of one ext_proc server over the shared backends: the real
    picker (config as in picker.yaml) or, with `null=True`, the do-nothing processor."""

    def __init__(self, addrs: list[str], mdir: Path, eps: Path, config: dict[str, Any], null: bool = False,
                 tls: bool = False) -> None:
        self.config = config
        self.mode = (config.get("ext_proc") or {}).get("request_body_mode", "FULL_DUPLEX_STREAMED")
        self.picker: PickerProcess | None = None
        self.null: subprocess.Popen | None = None
        if null:
            port = free_port()
            self.null = subprocess.Popen([sys.executable, "-m", "endpoint_picker.testing.null_processor", str(port),
                                          addrs[0], self.mode])
            wait_port(local_host(), port)
            address, self.pid = f"{local_host()}:{port}", self.null.pid
        else:
            self.picker = PickerProcess(pool_name="bench", manifests_dir=mdir, endpoints_file=eps, config=config, secure=tls)
            address, self.pid = self.picker.address, self.picker.proc.pid
        self.port = free_port()
        self.envoy = EnvoyProcess(build_bootstrap(self.port, address, endpoints=addrs, retries=0,
                                                  request_body_mode=self.mode, picker_tls=tls,
                                                  listener_address=local_host()), self.port, concurrency=1)

    def pause(self) -> None:
        """SIGSTOP the gateway while others are measured: an idle picker still scrapes its
        endpoints every 50 ms, CPU this 2-core machine cannot spare."""
        for pid in (self.envoy.proc.pid, self.pid):
            os.kill(pid, signal.SIGSTOP)

    def resume(self) -> None:
        for pid in (self.pid, self.envoy.proc.pid):
            os.kill(pid, signal.SIGCONT)

    def close(self) -> None:
        self.resume()
        self.envoy.stop()
        if self.picker is not None:
            self.picker.stop()
        if self.null is not None:
            self.null.terminate()
            self.null.wait(10)


class Bench:
    """Backends + Envoy alone + gateways through pickers. Reused by benchmarks/overhead.py: keep
    `addrs`, `direct_port`, `via_port`, `direct`, `via`, `picker`, `add()` and `close()` stable."""

    def __init__(self, n_backends: int, tmp: Path, config: dict[str, Any] | None = None,
                 request_body_mode: str | None = None) -> None:
        port = free_port()  # shared machines: other suites use 127.0.1.x:8000
        self.addrs = [f"{pod_host(1, i)}:{port}" for i in range(n_backends)]
        self.backends = _start_backends(self.addrs, free_port())
        self.mdir = tmp / "manifests"
        self.mdir.mkdir(exist_ok=True)
        write_manifests(self.mdir / "pool.yaml", [pool_manifest("bench", ports=(port,))])
        self.eps = tmp / "endpoints.yaml"
        write_endpoints(self.eps, [{"name": f"pod-{i}", "address": a.split(":")[0], "labels": {"app": "bench"}, "ready": True}
                                   for i, a in enumerate(self.addrs)])
        self.gateways: list[PickerGateway] = []
        self.direct_port = free_port()
        # Envoy's own round robin: the same bootstrap without the ext_proc filter.
        direct = build_bootstrap(self.direct_port, "127.0.0.1:9", endpoints=self.addrs, retries=0,
                                 listener_address=local_host())
        hcm = direct["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        hcm["http_filters"] = hcm["http_filters"][1:]
        self.direct = EnvoyProcess(direct, self.direct_port, concurrency=1)
        # The first gateway: `config` as given (its ext_proc.request_body_mode, else the default),
        # or forced into request_body_mode.
        first = self.add(with_mode(config or {}, request_body_mode) if request_body_mode else dict(config or {}))
        self.via, self.via_port, self.picker = first.envoy, first.port, first.picker

    def add(self, config: dict[str, Any], null: bool = False, tls: bool = False) -> PickerGateway:
        gw = PickerGateway(self.addrs, self.mdir, self.eps, config, null, tls)
        self.gateways.append(gw)
        return gw

    def close(self) -> None:
        self.direct.stop()
        for gw in self.gateways:
            gw.close()
        self.backends.stop()


def with_mode(config: dict[str, Any], request_body_mode: str) -> dict[str, Any]:
    return {**config, "ext_proc": {**(config.get("ext_proc") or {}), "request_body_mode": request_body_mode}}


def _start_backends(addrs: list[str], probe_port: int) -> EnvoyProcess:
    boot = backend_bootstrap(addrs)
    # A loopback probe listener tells us when the backend Envoy is up.
    boot["static_resources"]["listeners"].append({**boot["static_resources"]["listeners"][0], "name": "probe",
                                                  "address": {"socket_address": {"address": local_host(), "port_value": probe_port}}})
    return EnvoyProcess(boot, probe_port, concurrency=1)


FD, BUF = "FULL_DUPLEX_STREAMED", "BUFFERED"
# name -> (picker config, null processor?). "picker" is the shipped default (GKE's body mode);
# "picker-buffered" is what `igw up` runs for FailOpen pools; "null-*" do no work at all (the
# floor any ext_proc server pays through Envoy); "picker-grpcio" is the former transport;
# "picker-tls" serves TLS as a deployed picker does (--secure-serving, the CLI default).
GATEWAYS: dict[str, tuple[dict[str, Any], bool, bool]] = {
    "picker": (with_mode({}, FD), False, False),
    "picker-tls": (with_mode({}, FD), False, True),
    "picker-buffered": (with_mode({}, BUF), False, False),
    "picker-grpcio": (with_mode({"ext_proc": {"transport": "grpcio"}}, FD), False, False),
    "null": (with_mode({}, FD), True, False),
    "null-buffered": (with_mode({}, BUF), True, False),
}


async def _measure(port: int, body: bytes, pid: int | None, kind: str, value: float, secs: float,
                   max_requests: int = 1_000_000) -> dict[str, Any]:
    load = Load(port, body)
    await load.closed_loop(8, 0.3)  # warm connections
    c0 = cpu_seconds(pid) if pid else 0.0
    if kind == "rate":
        lat, err, el = await load.open_loop(value, secs, max_connections=150)
    else:
        lat, err, el = await load.closed_loop(int(value), secs, max_requests=max_requests)
    c1 = cpu_seconds(pid) if pid else 0.0
    load.close()
    out: dict[str, Any] = summarize(lat, err, el)
    if pid:
        out["ext_proc_cpu_ms_per_request"] = round((c1 - c0) / max(1, len(lat)) * 1000, 3)
        out["ext_proc_cores"] = round((c1 - c0) / el, 2)
    return out


async def run(quick: bool) -> dict[str, Any]:
    """Every load against Envoy alone and each gateway, back to back in one run, so the ratios
    compare like with like on this noisy 2-core machine."""
    secs = 3 if quick else 6
    small = json.dumps({"model": "m", "prompt": "Write a haiku about load balancers.", "max_tokens": 16}).encode()
    big = json.dumps({"model": "m", "prompt": ("The quick brown fox jumps over the lazy dog. " * 5000)[:220_000]}).encode()
    loads = [  # (name, body, kind, rate or concurrency, gateways)
        ("rate500", small, "rate", 500, ["picker", "picker-tls", "picker-buffered", "picker-grpcio"]),
        ("saturation_c64", small, "closed", 64, list(GATEWAYS)),
        ("prompt220k_rate100", big, "rate", 100, ["picker", "picker-tls", "picker-buffered", "null", "null-buffered"]),
        ("prompt220k_c150", big, "closed", 150, list(GATEWAYS)),
    ]
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as d:
        b = Bench(16, Path(d))
        gws = {"picker": b.gateways[0]}
        try:
            for name, (config, null, tls) in GATEWAYS.items():
                if name not in gws:
                    gws[name] = b.add(config, null, tls)
            await asyncio.sleep(1.0)  # first scrapes
            for gw in gws.values():
                gw.pause()
            for load_name, body, kind, value, names in loads:
                row: dict[str, Any] = {"direct": await _measure(b.direct_port, body, None, kind, value, secs, 3000)}
                for name in names:
                    gw = gws[name]
                    gw.resume()
                    await asyncio.sleep(0.2)  # fresh metrics before the first decision
                    h0 = decision_histogram(gw.picker) if gw.picker else []
                    r = row[name] = await _measure(gw.port, body, gw.pid, kind, value, secs, 3000)
                    if gw.picker:
                        h1 = decision_histogram(gw.picker)
                        run_hist = [(le, c - c0) for (le, c), (_, c0) in zip(h1, h0)] if h0 else h1
                        r["decision_ms"] = {"p50": round(histogram_quantile(0.5, run_hist) * 1000, 3),
                                            "p99": round(histogram_quantile(0.99, run_hist) * 1000, 3),
                                            "count": run_hist[-1][1] if run_hist else 0}
                    gw.pause()
                for name in names:
                    r = row[name]
                    r["added_p50_ms"] = round(r["p50_ms"] - row["direct"]["p50_ms"], 2)
                    r["rps_ratio_to_direct"] = round(r["rps"] / row["direct"]["rps"], 3) if row["direct"]["rps"] else None
                results[load_name] = row
        finally:
            b.close()
    results["scrape_100_endpoints_50ms"] = await _scrape_cost(secs)
    return results


async def _scrape_cost(secs: float) -> dict[str, Any]:
    """The picker alone with 100 idle metric endpoints (~15 KB pages) scraped every 50 ms."""
    with tempfile.TemporaryDirectory() as d:
        port = free_port()
        addrs = [f"{pod_host(2, i)}:{port}" for i in range(100)]
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
            text = httpx.get(f"http://{local_host()}:{picker.metrics_port}/metrics", timeout=5).text
            ages = [float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith("picker_metrics_age_seconds{")]
            return {"picker_cores": round(cores, 3), "endpoints": len(ages), "max_metrics_age_ms": round(max(ages) * 1000, 1),
                    "metrics_page_bytes": len(metrics_text(0))}
        finally:
            picker.stop()
            backends.stop()


def table(results: dict[str, Any]) -> str:
    lines = [f"{'load':<20} {'gateway':<16} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'+p50 ms':>8} "
             f"{'rps/direct':>10} {'ext_proc ms/req':>15} {'decision p50/p99 ms':>20}"]
    for load_name, row in results.items():
        if not isinstance(row, dict) or "direct" not in row:
            continue
        for name, r in row.items():
            dec = r.get("decision_ms")
            decision = f"{dec['p50']}/{dec['p99']}" if dec else ""
            lines.append(f"{load_name:<20} {name:<16} {r['rps']:>8.1f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} "
                         f"{r.get('added_p50_ms', ''):>8} {r.get('rps_ratio_to_direct', ''):>10} "
                         f"{r.get('ext_proc_cpu_ms_per_request', ''):>15} {decision:>20}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="3 s per phase instead of 6 s")
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args()
    results = asyncio.run(run(args.quick))
    text = json.dumps(results, indent=2)
    print(table(results))
    print(f"scrape: {results['scrape_100_endpoints_50ms']}")
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
