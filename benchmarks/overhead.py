"""Overhead scenario: what the picker adds on top of Envoy, with zero-work backends.

The setup is the picker's own `endpoint_picker.bench_overhead` (reused, not copied): 16 Envoy
`direct_response` backends with a ~30 KB vLLM-style /metrics page, the real `picker` process
(files discovery) and two gateway Envoys from `build_bootstrap` (one without the ext_proc
filter = Envoy round robin, one through the picker). This module adds the load levels the
issue asks for (Poisson 100/500/1,000 req/s, saturation, 220 KB at c=150), Envoy + picker CPU
per 1,000 requests, decision-latency deltas per run, and the upstream EPP hook.

For every load level the same client drives each gateway in turn (all gateways stay up for the
whole scenario, so each ratio comes from back-to-back runs in one process):
fixed open-loop Poisson rates, a closed-loop saturation run, and a 220 KB-prompt run at
concurrency 150. CPU is read from /proc for the Envoy and picker processes; the picker's own
decision latency comes from its `picker_decision_duration_seconds` histogram (difference of two
scrapes around each run). A last step measures the picker's idle CPU with 100 metric endpoints.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from endpoint_picker import bench_overhead as picker_bench
from endpoint_picker.testing.picker import PickerProcess, pool_manifest, write_endpoints, write_manifests

from . import failures, stats, wrk
from .httpclient import Pool
from .loadgen import closed_loop, open_loop, poisson_offsets
from .procs import cpu_seconds, free_port, local_host, pod_host
from .scenario import Scenario, picker_config
from .stacks import Gateway, NotRun, start_upstream_epp

DECISION_HIST = "picker_decision_duration_seconds"


def _body(prompt_bytes: int, tag: str = "") -> bytes:
    prompt = (tag + "hello world " * (prompt_bytes // 12 + 1))[:prompt_bytes]
    return orjson.dumps({"model": "m", "prompt": prompt, "max_tokens": 16, "stream": False})


def _unique_bodies(prompt_bytes: int, n: int) -> list[bytes]:
    """n bodies whose prompts differ from the first byte on: nothing of one prompt's hashing can be
    reused for another (the picker's worst case for long prompts)."""
    return [_body(prompt_bytes, f"[unique {i:04d}] ") for i in range(n)]


async def _scrape(port: int | None) -> str:
    if port is None:
        return ""
    pool = Pool(local_host(), port, 2)
    try:
        r = await pool.request("GET", "/metrics", timeout=5)
        return r.body.decode(errors="replace")
    finally:
        pool.close()


class Level:
    """Runs against one gateway; `measure` accumulates several interleaved parts into one result."""

    def __init__(self, gw: "_Target") -> None:
        self.gw = gw
        self.samples: list = []
        self.window = 0.0
        self.wall = 0.0
        self.cpu: dict[str, float] = {}
        self.hist: list[tuple[float, float]] = []
        self.loadavg: list[float] = []
        self.wrk_runs: list[wrk.WrkRun] = []

    async def run(self, kind: str, params: dict[str, Any], body: bytes | list[bytes], seed: int = 7) -> None:
        """`body`: one body for every request, or a list cycled through (unique prompts)."""
        gw = self.gw
        bodies = body if isinstance(body, list) else [body]
        pool = Pool(gw.host, gw.port, limit=int(params.get("max_connections", 512)))
        procs = gw.procs()
        before_hist = stats.parse_histogram(await _scrape(gw.metrics_port), DECISION_HIST)
        cpu0 = {k: p.cpu() for k, p in procs.items()}

        async def send(item: Any):
            b = bodies[item % len(bodies)] if isinstance(item, int) else bodies[0]
            return await pool.request("POST", "/v1/completions", b, timeout=params.get("timeout_s", 30))

        t0 = time.monotonic()
        if kind == "wrk":
            run = await wrk.closed_loop(f"http://{gw.host}:{gw.port}/v1/completions", bodies[0], params["concurrency"],
                                        params["duration_s"])
            self.wrk_runs.append(run)
            samples, window = [], run.seconds
        elif kind == "rate":
            offs = poisson_offsets(params["rate"], params["duration_s"], seed=seed)
            samples, start, _ = await open_loop(offs, [None] * len(offs), send, drain_s=params.get("drain_s", 15))
            # achieved throughput: completions over the time they took (not over the schedule)
            window = max((x.t_end for x in samples), default=start) - start
        else:
            samples, start, end = await closed_loop(params["concurrency"], params["duration_s"], lambda n: n, send,
                                                    max_requests=params.get("requests", 1_000_000))
            window = end - start
        self.wall += time.monotonic() - t0
        cpu1 = {k: p.cpu() for k, p in procs.items()}
        after_hist = stats.parse_histogram(await _scrape(gw.metrics_port), DECISION_HIST)
        pool.close()
        self.samples += samples
        self.window += window
        for k in procs:
            self.cpu[k] = self.cpu.get(k, 0.0) + cpu1[k] - cpu0[k]
        if after_hist:
            d = dict(stats.diff_buckets(after_hist, before_hist))
            prev = dict(self.hist)
            self.hist = sorted((le, prev.get(le, 0.0) + c) for le, c in d.items())
        try:
            self.loadavg.append(float(open("/proc/loadavg").read().split()[0]))
        except OSError:
            pass

    def _wrk_result(self) -> dict[str, Any]:
        runs = self.wrk_runs
        requests = sum(r.requests for r in runs)
        ok = requests - sum(r.errors for r in runs)
        # wrk gives percentiles per run, not samples: request-weighted mean over the parts.
        latency = {q: sum(r.percentiles_s[q] * r.requests for r in runs) / max(1, requests)
                   for q in ("p50", "p90", "p99")}
        return {"requests": requests, "ok": ok, "errors": requests - ok, "error_examples": [],
                "throughput_rps": ok / self.window if self.window > 0 else 0.0,
                "latency_s": {**latency, "mean": None, "n": ok}, "client": "wrk"}

    def result(self) -> dict[str, Any]:
        samples = self.samples
        ok = [s for s in samples if s.ok]
        out: dict[str, Any] = self._wrk_result() if self.wrk_runs else {
            "requests": len(samples), "ok": len(ok), "errors": len(samples) - len(ok),
            "error_examples": sorted({(s.error or f"HTTP {s.status}") for s in samples if not s.ok})[:3],
            "throughput_rps": len(ok) / self.window if self.window > 0 else 0.0,
            "latency_s": stats.summarize([s.latency for s in ok]),
        }
        out.update({
            "cpu_s": dict(self.cpu),
            "wall_s": self.wall,
            "cpu_cores": {k: v / self.wall for k, v in self.cpu.items()} if self.wall else {},
        })
        n_ok = out["ok"]
        out["cpu_s_per_1000_requests"] = {k: (v / n_ok * 1000 if n_ok else None) for k, v in self.cpu.items()}
        if self.loadavg:
            out["loadavg_1m"] = max(self.loadavg)
        if self.hist:
            out["decision_latency_s"] = {"p50": stats.histogram_quantile(0.5, self.hist),
                                         "p99": stats.histogram_quantile(0.99, self.hist), "count": self.hist[-1][1]}
        return out


async def _idle_cpu(gw: "_Target", seconds: float) -> dict[str, Any]:
    procs = gw.procs()
    await asyncio.sleep(1.0)  # let the scraper settle
    c0 = {k: p.cpu() for k, p in procs.items()}
    t0 = time.monotonic()
    await asyncio.sleep(seconds)
    wall = time.monotonic() - t0
    c1 = {k: p.cpu() for k, p in procs.items()}
    text = await _scrape(gw.metrics_port)
    ages = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("picker_metrics_age_seconds{")]
    return {"cores": {k: (c1[k] - c0[k]) / wall for k in procs}, "seconds": wall,
            "endpoints_with_metrics": sum(1 for a in ages if a >= 0), "max_metrics_age_s": max(ages) if ages else None}


class _Target:
    """Where a level's requests go and which processes to charge CPU to."""

    def __init__(self, port: int, procs: dict[str, int], metrics_port: int | None = None, stop=None,
                 pause=None, resume=None) -> None:
        self.host, self.port, self.metrics_port = local_host(), port, metrics_port
        self._procs = procs
        self._stop = stop
        # Gateways other than the one being measured are SIGSTOPped: idle pickers scrape.
        self.pause = pause or (lambda: None)
        self.resume = resume or (lambda: None)

    def procs(self) -> dict[str, "_Pid"]:
        return {k: _Pid(v) for k, v in self._procs.items()}

    def stop(self) -> None:
        if self._stop:
            self._stop()


class _Pid:
    def __init__(self, pid: int) -> None:
        self.pid = pid

    def cpu(self) -> float:
        return cpu_seconds(self.pid)


def run(sc: Scenario, log=print) -> dict[str, Any]:
    return asyncio.run(_run(sc, log))


async def _run(sc: Scenario, log) -> dict[str, Any]:
    o = sc.overhead
    n = int(o.get("endpoints", 16))
    picker_st = next((st for st in sc.strategies if st.type == "picker"), None)
    tmp = Path(tempfile.mkdtemp(prefix="igw-overhead-", dir=_tmp()))
    bench = picker_bench.Bench(n, tmp, picker_config(picker_st) if picker_st else {})
    first_picker = bench.gateways[0]
    targets: dict[str, _Target] = {}
    result: dict[str, Any] = {"strategies": {}, "levels": [], "not_run": {}, "failed": {},
                              "setup": "endpoint_picker.bench_overhead.Bench",
                              "metrics_page_bytes": len(picker_bench.metrics_text(0))}
    try:
        for st in sc.strategies:
            if st.type == "envoy":
                targets[st.name] = _Target(bench.direct_port, {"envoy": bench.direct.proc.pid})
            elif st.type in ("picker", "null-processor"):
                # The first picker strategy got Bench's own gateway; others get one each.
                gw = first_picker if st is picker_st and not st.tls else bench.add(picker_config(st), null=st.type == "null-processor",
                                                                    tls=st.tls)
                procs = {"envoy": gw.envoy.proc.pid, "picker" if gw.picker else "null-processor": gw.pid}
                targets[st.name] = _Target(gw.port, procs, gw.picker.metrics_port if gw.picker else None,
                                           pause=gw.pause, resume=gw.resume)
            elif st.type == "upstream-epp":
                try:
                    gw = Gateway(st, bench.addrs, picker_config(st))
                except NotRun as e:
                    result["not_run"][st.name] = str(e)
                    log(f"  {st.name}: {e}")
                    continue
                except Exception as e:  # noqa: BLE001 (a gateway that cannot start fails the run, loudly)
                    result["failed"][st.name] = f"{type(e).__name__}: {e}"[:3000]
                    log(f"  {st.name}: FAILED: {result['failed'][st.name]}")
                    continue
                targets[st.name] = _Target(gw.port, {k: p.pid for k, p in gw.procs().items()}, gw.metrics_port, gw.stop)
            result["strategies"][st.name] = {"type": st.type, "lb": st.lb, "description": st.description,
                                             "config": picker_config(st) if st.type != "envoy" else None}
        await asyncio.sleep(1.5)  # picker: discovery + first scrapes
        for tg in targets.values():
            tg.pause()
        small = _body(int(o.get("small_prompt_bytes", 240)))
        levels: list[tuple[str, str, dict[str, Any], bytes]] = []
        for rate in o.get("rates", [100, 500, 1000]):
            levels.append((f"{rate} req/s", "rate", {"rate": rate, "duration_s": o.get("duration_s", 6)}, small))
        sat = o.get("saturation") or {}
        levels.append(("saturation", "closed", {"concurrency": sat.get("concurrency", 64),
                                                "duration_s": sat.get("duration_s", 6)}, small))
        sw = o.get("saturation_wrk") or {}
        if sw and wrk.available():
            levels.append(("saturation (wrk client)", "wrk", {"concurrency": sw.get("concurrency", 64),
                                                               "duration_s": sw.get("duration_s", 6)}, small))
        elif sw:
            result["not_run"]["saturation (wrk client)"] = "wrk is not installed (apt-get install wrk)"
        lg = o.get("large_prompt") or {}
        if lg:
            levels.append((f"{lg.get('bytes', 220000) // 1000} KB prompt, c={lg.get('concurrency', 150)}", "closed",
                           {"concurrency": lg.get("concurrency", 150), "duration_s": lg.get("duration_s", 8),
                            "requests": lg.get("requests", 100000), "timeout_s": 60}, _body(int(lg.get("bytes", 220000)))))
        lu = o.get("large_prompt_unique") or {}
        if lu:
            levels.append((f"{lu.get('bytes', 220000) // 1000} KB unique prompts, c={lu.get('concurrency', 150)}", "closed",
                           {"concurrency": lu.get("concurrency", 150), "duration_s": lu.get("duration_s", 6),
                            "timeout_s": 60}, _unique_bodies(int(lu.get("bytes", 220000)), int(lu.get("distinct", 64)))))
        lr = o.get("large_prompt_rate") or {}
        if lr:
            levels.append((f"{lr.get('bytes', 220000) // 1000} KB prompt, {lr.get('rate', 100)} req/s", "rate",
                           {"rate": lr.get("rate", 100), "duration_s": lr.get("duration_s", 6), "timeout_s": 60},
                           _body(int(lr.get("bytes", 220000)))))
        parts = int(o.get("interleave", 2))
        for label, kind, params, body in levels:
            size = len(body[0]) if isinstance(body, list) else len(body)
            entry: dict[str, Any] = {"level": label, "kind": kind, "params": params, "prompt_bytes": size, "runs": {},
                                     "interleaved_parts": parts}
            meas = {name: Level(tg) for name, tg in targets.items()}
            part = {**params, "duration_s": params["duration_s"] / parts}
            # A, B, A, B, ...: interleaved halves, so a burst of load from elsewhere on the box hits
            # every gateway rather than whichever happened to run at that moment.
            for i in range(parts):
                for name, tg in targets.items():
                    tg.resume()
                    # Warm the connection pool so the run does not pay for connects (and give a
                    # resumed picker a fresh scrape).
                    await Level(tg).run("closed", {"concurrency": 8, "duration_s": 0.2}, body)
                    await meas[name].run(kind, part, body, seed=7 + i)
                    tg.pause()
            for name, m in meas.items():
                r = m.result()
                why = failures.overhead(r)
                if why:
                    result["failed"][f"{name} @ {label}"] = why
                    log(f"  {label:>22} {name:>20}: FAILED: {why}")
                    continue
                entry["runs"][name] = r
                log(f"  {label:>22} {name:>20}: {r['throughput_rps']:8.1f} req/s  p50 {_ms(r['latency_s']['p50'])}  "
                    f"p99 {_ms(r['latency_s']['p99'])}  errors {r['errors']}"
                    + (f"  decision p50 {_ms(r['decision_latency_s']['p50'])} p99 {_ms(r['decision_latency_s']['p99'])}"
                       if "decision_latency_s" in r else ""))
            result["levels"].append(entry)
    finally:
        for tg in targets.values():
            tg.stop()
        bench.close()
    scr = o.get("scrape") or {}
    if scr:
        result["scrape"] = await _scrape_cost(sc, scr, log)
    return result


async def _scrape_cost(sc: Scenario, scr: dict[str, Any], log) -> dict[str, Any]:
    """The picker alone with `endpoints` idle metric endpoints (Envoy direct_response, ~30 KB pages)."""
    n = int(scr.get("endpoints", 100))
    interval = int(scr.get("interval_ms", 50))
    port = free_port()
    addrs = [f"{pod_host(2, i)}:{port}" for i in range(n)]
    backends = picker_bench._start_backends(addrs, free_port())
    out: dict[str, Any] = {"endpoints": n, "interval_ms": interval, "runs": {},
                           "metrics_page_bytes": len(picker_bench.metrics_text(0))}
    tmp = Path(tempfile.mkdtemp(prefix="igw-scrape-", dir=_tmp()))
    mdir = tmp / "m"
    mdir.mkdir()
    write_manifests(mdir / "pool.yaml", [pool_manifest("idle", ports=(port,))])
    eps = tmp / "eps.yaml"
    write_endpoints(eps, [{"name": f"p{i}", "address": a.split(":")[0], "labels": {"app": "idle"}, "ready": True}
                          for i, a in enumerate(addrs)])
    measured: set[str] = set()
    try:
        for st in sc.strategies:
            if st.type == "upstream-epp":
                out["runs"][st.name] = await _upstream_idle_cpu(tmp, addrs, float(scr.get("measure_s", 8)), log, n)
                continue
            if st.type != "picker":
                continue
            cfg = picker_config(st)
            # Scraping depends on the scrape config only (not body mode or transport): once each.
            key = repr(sorted((cfg.get("scrape") or {}).items()))
            if key in measured:
                continue
            measured.add(key)
            cfg = {**cfg, "scrape": {**(cfg.get("scrape") or {}), "interval_ms": interval}}
            picker = PickerProcess(pool_name="idle", manifests_dir=mdir, endpoints_file=eps, config=cfg)
            try:
                tg = _Target(0, {"picker": picker.proc.pid}, picker.metrics_port)
                r = await _idle_cpu(tg, float(scr.get("measure_s", 8)))
                out["runs"][st.name] = r
                log(f"  scrape {n} endpoints @{interval} ms {st.name}: picker {r['cores'].get('picker', 0):.3f} cores, "
                    f"{r['endpoints_with_metrics']} endpoints fresh, max age {r['max_metrics_age_s']}")
            finally:
                picker.stop()
    finally:
        backends.stop()
    return out


async def _upstream_idle_cpu(tmp: Path, addrs: list[str], seconds: float, log, n: int) -> dict[str, Any]:
    """The reference EPP alone with the same idle endpoints, at its default 50 ms metrics tick."""
    try:
        proc, _grpc, metrics_port = start_upstream_epp(tmp, addrs, {})
    except NotRun as e:
        return {"not_run": str(e)}
    try:
        r = await _idle_cpu(_Target(0, {"picker": proc.pid}, metrics_port), seconds)
        log(f"  scrape {n} endpoints @50 ms upstream-epp: {r['cores'].get('picker', 0):.3f} cores")
        return r
    finally:
        proc.stop()


def _tmp() -> str:
    d = Path(__file__).parent / ".work" / "tmp"
    d.mkdir(parents=True, exist_ok=True)
    return str(d)


def _ms(v: float | None) -> str:
    return "   -   " if v is None else f"{v * 1000:7.2f} ms"
