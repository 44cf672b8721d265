"""Soak: `igw up` under steady traffic for a long time while faults come round every few minutes.

    uv run python -m benchmarks.soak [--duration 1800] [--rate 12] [--fault-every 120] [--out DIR]
    uv run igw bench soak            # the 30-minute run, results in benchmarks/results/soak/

The stack is `local` with two pickers per pool (a warm standby, a 3 s Lease) on its own loopback
range, port and state directory. Faults rotate: the leading picker killed (SIGKILL), a replica
killed (SIGKILL), a config re-applied with `igw up` (the traffic split flips 90/10 <-> 50/50).
Traffic is an open-loop Poisson mix (benchmarks/soak_traffic.py; every outcome classified: ok,
refused, lost before it started, cut after it started). Every `sample_every` seconds the run
records per process RSS and open fds, and per window requests, causes and latency percentiles.

Written: soak-<minutes>min.json (plan, machine, load average, fault timeline, series, totals,
every request that did not end ok, verdicts) and .png. Verdicts: 0 requests lost before they
started, 0 streams cut while a picker restarted (streams cut on a killed replica are expected and
counted apart), RSS growth < 5% for every process from the end of its warm-up (restarted ones from
their restart) to the end.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from igw.local.process import free_address_base, free_port

from .soak_traffic import Outcome, RequestKind, Traffic, causes, percentile, process_usage, refusals

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "soak"
BASE = "meta-llama/Llama-3.1-8B-Instruct"
KINDS = [
    RequestKind("stream", BASE, stream=True, max_tokens=800, weight=3),     # ~1.3 s at time scale 0.25
    RequestKind("chat", BASE, stream=False, max_tokens=32, weight=4),
    RequestKind("split", "food-review", stream=False, max_tokens=32, weight=1.5),   # Standard, 90/10 split
    RequestKind("sheddable", "cad-fabricator", stream=False, max_tokens=32, weight=1.5),
]
FAULTS = ("picker-kill", "replica-kill", "config-reapply")
RSS_GROWTH_LIMIT = 0.05


@dataclass
class SoakPlan:
    duration_s: float = 1800
    rate: float = 12.0
    fault_every_s: float = 120
    first_fault_s: float = 60
    warmup_s: float = 45
    sample_every_s: float = 5
    time_scale: float = 0.25
    seed: int = 7
    kill_amid_streams: int = 0
    """Delay a picker kill (up to 10 s) until this many streams are running (the CI soak: its one
    picker kill must hit streams; the 30-minute run kills on schedule)."""


def derived_stack_file(stacks_dir: Path, name: str, *, picker: dict[str, Any] | None = None,
                       server: dict[str, Any] | None = None, split: tuple[int, int] | None = None) -> Path:
    """stacks/Pulumi.local.yaml with overrides, written as Pulumi.<name>.yaml in stacks_dir."""
    doc = yaml.safe_load((ROOT / "stacks" / "Pulumi.local.yaml").read_text())
    cfg = doc["config"]
    cfg["inference-gateway:model_servers"][0].update(server or {})
    if picker:
        cfg["inference-gateway:pools"][0]["picker"] = dict(picker)
    if split:
        model = next(m for m in cfg["inference-gateway:models"] if m.get("targets"))
        for target, weight in zip(model["targets"], split):
            target["weight"] = weight
    stacks_dir.mkdir(parents=True, exist_ok=True)
    path = stacks_dir / f"Pulumi.{name}.yaml"
    path.write_text(yaml.safe_dump(copy.deepcopy(doc), sort_keys=False))
    return path


def free_loopback() -> str:
    """127.0.N.10 with 4 addresses bindable on port 8000 (IGW_SOAK_ADDRESS_BASE pins it)."""
    return os.environ.get("IGW_SOAK_ADDRESS_BASE") or free_address_base(4)


class SoakStack:
    """The soak's own `igw up --detach` stack."""

    name = "soak"

    def __init__(self, work: Path, time_scale: float) -> None:
        self.stacks = work / "stacks"
        self.state_dir = work / "state"
        self.port = int(os.environ.get("IGW_SOAK_PORT") or 0) or free_port()
        self.address_base = free_loopback()
        self.time_scale = time_scale
        self.split = (90, 10)

    def _igw(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "igw.cli", *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=timeout)

    def write(self) -> None:
        derived_stack_file(self.stacks, self.name, picker={"replicas": 2, "lease_duration_seconds": 3},
                           split=self.split)

    def up(self) -> None:
        self.write()
        r = self._igw("up", "--stack", self.name, "--stacks-dir", str(self.stacks), "--detach", "--port", str(self.port),
                      "--state-dir", str(self.state_dir), "--address-base", self.address_base,
                      "--time-scale", str(self.time_scale))
        if r.returncode != 0:
            raise RuntimeError(f"igw up failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")

    def reapply(self) -> str:
        """Flip the traffic split and apply the changed stack to the running one."""
        self.split = (50, 50) if self.split == (90, 10) else (90, 10)
        self.up()
        return f"split {self.split[0]}/{self.split[1]}"

    def down(self) -> None:
        self._igw("down", "--stack", self.name, "--state-dir", str(self.state_dir), timeout=60)

    def state(self) -> dict[str, Any]:
        return json.loads((self.state_dir / "state.json").read_text())

    def kill_picker(self) -> str:
        ready = [p for p in self.state()["processes"].values() if p["kind"] == "picker" and p["ready"] and p["running"]]
        if not ready:
            return "no ready picker"
        os.kill(ready[0]["pid"], signal.SIGKILL)
        return ready[0]["name"]

    def kill_replica(self, n: int) -> str:
        sims = sorted((p for p in self.state()["processes"].values() if p["kind"] == "simulator" and p["running"]),
                      key=lambda p: p["name"])
        victim = sims[n % len(sims)]
        os.killpg(victim["pid"], signal.SIGKILL)
        return victim["name"]

    def usage(self) -> dict[str, dict[str, int]]:
        st = self.state()
        out = {}
        for name, p in st["processes"].items():
            u = process_usage(p["pid"]) if p.get("pid") else None
            if u:
                out[name] = {"pid": p["pid"], "rss_kib": u[0], "fds": u[1]}
        u = process_usage(st["supervisor_pid"])
        if u:
            out["supervisor"] = {"pid": st["supervisor_pid"], "rss_kib": u[0], "fds": u[1]}
        return out


async def _faults(stack: SoakStack, plan: SoakPlan, t0: float, log: Callable[[str], None],
                  traffic: Traffic) -> list[dict[str, Any]]:
    timeline, n = [], 0
    at = plan.first_fault_s
    while at < plan.duration_s - 20:
        await asyncio.sleep(max(0.0, t0 + at - time.monotonic()))
        kind = FAULTS[n % len(FAULTS)]
        if kind == "picker-kill" and plan.kill_amid_streams:
            until = time.monotonic() + 10
            while traffic.running.get("stream", 0) < plan.kill_amid_streams and time.monotonic() < until:
                await asyncio.sleep(0.05)
        started = time.monotonic()
        if kind == "picker-kill":
            what = stack.kill_picker()
        elif kind == "replica-kill":
            what = stack.kill_replica(n // len(FAULTS))
        else:
            what = await asyncio.to_thread(stack.reapply)
        timeline.append({"t": round(started - t0, 2), "fault": kind, "target": what,
                         "took_s": round(time.monotonic() - started, 2)})
        log(f"  {started - t0:6.0f}s  {kind}: {what}")
        n += 1
        at += plan.fault_every_s
    return timeline


async def _sampler(stack: SoakStack, plan: SoakPlan, t0: float, stop: asyncio.Event) -> list[dict[str, Any]]:
    samples = []
    while not stop.is_set():
        samples.append({"t": round(time.monotonic() - t0, 2), "loadavg": [round(x, 2) for x in os.getloadavg()],
                        "procs": await asyncio.to_thread(stack.usage)})
        try:
            await asyncio.wait_for(stop.wait(), plan.sample_every_s)
        except asyncio.TimeoutError:
            pass
    return samples


def _windows(outcomes: list[Outcome], t0: float, width: float, end: float) -> list[dict[str, Any]]:
    out = []
    t = 0.0
    while t < end:
        w = [o for o in outcomes if t <= o.sent - t0 < t + width]
        lat = [o.latency for o in w if o.cause == "ok" and o.latency is not None]
        out.append({"t": t, "requests": len(w), "rps": round(len(w) / width, 2), "causes": causes(w),
                    "p50_s": percentile(lat, 50), "p99_s": percentile(lat, 99)})
        t += width
    return out


def rss_growth(doc: dict[str, Any], min_span_s: float = 60.0) -> dict[str, float]:
    """RSS growth of every process incarnation (name, pid) from the end of its warm-up (its first
    sample + plan.warmup_s) to its last sample, for those that then lived at least min_span_s:
    restarted pickers and replicas count from their restart."""
    series: dict[tuple[str, int], list[tuple[float, int]]] = {}
    for s in doc["samples"]:
        for name, u in s["procs"].items():
            series.setdefault((name, u["pid"]), []).append((s["t"], u["rss_kib"]))
    out: dict[str, float] = {}
    seen: dict[str, int] = {}
    for (name, _pid), points in series.items():
        warm = [x for x in points if x[0] >= points[0][0] + doc["plan"]["warmup_s"]]
        if len(warm) < 2 or warm[-1][0] - warm[0][0] < min_span_s:
            continue
        seen[name] = seen.get(name, 0) + 1
        key = name if seen[name] == 1 else f"{name}#{seen[name]}"
        out[key] = round(warm[-1][1] / warm[0][1] - 1, 4)
    return out


def verdicts(doc: dict[str, Any]) -> dict[str, Any]:
    """What the soak asserts, from the recorded document (also used by the CI soak test)."""
    outs, faults = doc["outcomes"], doc["faults"]
    picker_kills = [f["t"] for f in faults if f["fault"] == "picker-kill"]
    replica_kills = [(f["target"], f["t"]) for f in faults if f["fault"] == "replica-kill"]
    cut = [o for o in outs if o["cause"] == "cut"]

    def spans(o: dict[str, Any], t: float) -> bool:
        return o["sent"] <= t <= o["sent"] + (o["latency"] or 0)

    by_replica = [o for o in cut if any(o["pod"] == pod and spans(o, t) for pod, t in replica_kills)]
    by_picker = [o for o in cut if o not in by_replica and any(spans(o, t) for t in picker_kills)]
    growth = rss_growth(doc)
    return {
        "streams_in_flight_at_picker_kills": sum(f.get("streams_in_flight", 0) for f in faults if f["fault"] == "picker-kill"),
        "lost_before_start": sum(1 for o in outs if o["cause"] == "lost"),
        "streams_cut_by_picker_restart": len(by_picker),
        "streams_cut_on_killed_replica": len(by_replica),
        "streams_cut_other": len(cut) - len(by_picker) - len(by_replica),
        "rss_growth_after_warmup": growth,
        "rss_growth_ok": all(g < RSS_GROWTH_LIMIT for g in growth.values()),
    }


async def _run(stack: SoakStack, plan: SoakPlan, log: Callable[[str], None]) -> dict[str, Any]:
    traffic = Traffic("127.0.0.1", stack.port, KINDS, plan.rate, seed=plan.seed, timeout_s=120)
    stop = asyncio.Event()
    t0 = time.monotonic()
    sampler = asyncio.create_task(_sampler(stack, plan, t0, stop))
    faults = asyncio.create_task(_faults(stack, plan, t0, log, traffic))
    outcomes = await traffic.run(plan.duration_s)
    stop.set()
    timeline, samples = await faults, await sampler
    for f in timeline:  # what was running when the fault hit
        t = t0 + f["t"]
        spanning = [o for o in outcomes if o.started and o.sent < t < (o.end or 0)]
        f["in_flight"] = len(spanning)
        f["streams_in_flight"] = sum(1 for o in spanning if o.kind == "stream")
    # Only what went wrong is kept request by request (refused, lost, cut); the rest is in windows.
    rel = [dict(o.to_json(), sent=round(o.sent - t0, 3)) for o in outcomes if o.cause != "ok"]
    lat = {k.name: [o.latency for o in outcomes if o.kind == k.name and o.cause == "ok"] for k in KINDS}
    return {
        "faults": timeline, "samples": samples, "outcomes": rel,
        "windows": _windows(outcomes, t0, 30.0, plan.duration_s),
        "totals": {"requests": len(outcomes), "causes": causes(outcomes), "refusals": refusals(outcomes),
                   "latency_s": {k: {"p50": percentile(v, 50), "p99": percentile(v, 99), "n": len(v)}
                                 for k, v in lat.items()}},
    }


def _say(message: str) -> None:
    print(message, flush=True)


def run_soak(plan: SoakPlan, work: Path, log: Callable[[str], None] = _say) -> dict[str, Any]:
    started_at = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    stack = SoakStack(work, plan.time_scale)
    log(f"soak: {plan.duration_s / 60:g} min at {plan.rate:g} req/s, a fault every {plan.fault_every_s:g} s "
        f"(stack on {stack.address_base}, port {stack.port})")
    stack.up()
    try:
        doc = asyncio.run(_run(stack, plan, log))
        st = stack.state()
        doc["processes_at_end"] = {n: {"running": p["running"], "restarts": p["restarts"]} for n, p in st["processes"].items()}
    finally:
        stack.down()
    doc.update(plan=asdict(plan), kinds=[asdict(k) for k in KINDS],
               machine={"cpus": os.cpu_count(), "started_at": started_at,
                        "finished_at": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")})
    doc["verdicts"] = verdicts(doc)
    return doc


def plot(doc: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(4, 1, figsize=(11, 12), sharex=True)
    w = doc["windows"]
    t = [x["t"] / 60 for x in w]
    ax[0].plot(t, [x["rps"] for x in w], label="requests/s")
    for cause, style in (("refused", "--"), ("lost", ":"), ("cut", "-.")):
        ax[0].plot(t, [x["causes"][cause] / 30 for x in w], style, label=f"{cause}/s")
    ax[0].set_ylabel("per second (30 s windows)")
    ax[1].plot(t, [x["p50_s"] for x in w], label="p50")
    ax[1].plot(t, [x["p99_s"] for x in w], label="p99")
    ax[1].set_ylabel("latency of ok requests (s)")
    st = [s["t"] / 60 for s in doc["samples"]]
    names = sorted({n for s in doc["samples"] for n in s["procs"]})
    for name in names:
        ax[2].plot(st, [s["procs"].get(name, {}).get("rss_kib", float("nan")) / 1024 for s in doc["samples"]], label=name)
        ax[3].plot(st, [s["procs"].get(name, {}).get("fds", float("nan")) for s in doc["samples"]], label=name)
    ax[2].set_ylabel("RSS (MiB)")
    ax[3].set_ylabel("open fds")
    ax[3].set_xlabel("minutes")
    for a in ax:
        for f in doc["faults"]:
            a.axvline(f["t"] / 60, color={"picker-kill": "red", "replica-kill": "orange"}.get(f["fault"], "green"),
                      alpha=0.3, lw=1)
        a.legend(fontsize=6, loc="upper right", ncol=3)
    fig.suptitle("soak: faults as vertical lines (red picker kill, orange replica kill, green config re-apply)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=SoakPlan.duration_s, help="seconds (default 1800)")
    p.add_argument("--rate", type=float, default=SoakPlan.rate, help="requests per second (default 12)")
    p.add_argument("--fault-every", type=float, default=SoakPlan.fault_every_s, help="seconds between faults (120)")
    p.add_argument("--out", type=Path, default=RESULTS, help="results directory (default benchmarks/results/soak)")
    p.add_argument("--work", type=Path, default=None, help="stack state directory (default a temporary one)")
    a = p.parse_args(argv)
    plan = SoakPlan(duration_s=a.duration, rate=a.rate, fault_every_s=a.fault_every)
    import tempfile

    work = a.work or Path(tempfile.mkdtemp(prefix="igw-soak-"))
    doc = run_soak(plan, work)
    doc["command"] = "uv run python -m benchmarks.soak " + " ".join(argv if argv is not None else sys.argv[1:])
    a.out.mkdir(parents=True, exist_ok=True)
    stem = f"soak-{round(plan.duration_s / 60)}min"
    (a.out / f"{stem}.json").write_text(json.dumps(doc, indent=None, separators=(",", ":")) + "\n")
    plot(doc, a.out / f"{stem}.png")
    print(json.dumps({"totals": doc["totals"], "verdicts": doc["verdicts"]}, indent=1))
    v = doc["verdicts"]
    ok = v["lost_before_start"] == 0 and v["streams_cut_by_picker_restart"] == 0 and v["rss_growth_ok"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
