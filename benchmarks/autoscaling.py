"""Capacity that follows demand (issue #17), measured on `igw up --stack scale-to-zero`.

    uv run python -m benchmarks.autoscaling [--quick] [--out benchmarks/results/autoscaling]

One run, on simulated H100 replicas (`--max-num-seqs 4`, time scale 2) behind the real Envoy and
picker, with the stack's own autoscaling policy (igw/local/autoscaler.py):

1. cold start: the pool idles at zero replicas; one streaming request waits in the picker while
   the autoscaler starts a replica: its time to first token, and the cold start as the
   autoscaler (process start -> ready) and the picker (first held -> first dispatch) saw it;
2. capacity: one replica, as many closed-loop clients as it runs sequences: completed requests/s;
3. ramp: open-loop Poisson arrivals from 0 to 4x that capacity and back to 0, then idle until the
   pool is back at zero: every outcome (served / refused by reason / lost), TTFT, and the
   replica count over time;
4. overload: two fixed replicas at 2.5x their capacity, 25% critical and 75% standard traffic
   from two client addresses, flow control on and off (shedding and #15's overload bounds only)
   alternately in rounds with the same arrivals: critical TTFT p50/p99 for each.

Results: `<out>/autoscaling.json` (every figure, the load average around each phase, the
commands) and `<out>/autoscaling.png` (replicas and ready replicas over time with the offered
rate; TTFT of each request). Addresses: IGW_AUTOSCALE_ADDRESS_BASE (default: a free 127.0.N.10)
for the replicas, the clients send from .200 and up of the same /24.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from igw.local.process import free_address_base, free_port

from .stream_client import Kind, closed_loop, open_loop, stream, summary

ROOT = Path(__file__).resolve().parents[1]
STACK = "scale-to-zero"
DEPLOYMENT = "vllm-llama3-8b-instruct"
CRITICAL = "meta-llama/Llama-3.1-8B-Instruct"
STANDARD = "food-review"
MAX_NUM_SEQS = 4
TIME_SCALE = 2.0


def free_base() -> str:
    """The run's --address-base: six pods and the autoscaler's extra address (IGW_AUTOSCALE_ADDRESS_BASE pins it)."""
    return os.environ.get("IGW_AUTOSCALE_ADDRESS_BASE") or free_address_base(6, also=(190,))


class LocalRun:
    """One `igw up --detach` of a stack file, its state, and `igw down`."""

    def __init__(self, stack: str, stacks_dir: Path, state_dir: Path, *, port: int, base: str,
                 time_scale: float = TIME_SCALE) -> None:
        self.stack, self.stacks_dir, self.state_dir = stack, stacks_dir, state_dir
        self.port, self.base, self.time_scale = port, base, time_scale
        self.host = "127.0.0.1"

    def igw(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "igw.cli", *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=timeout)

    def up(self) -> None:
        r = self.igw("up", "--stack", self.stack, "--stacks-dir", str(self.stacks_dir), "--detach", "--port",
                     str(self.port), "--state-dir", str(self.state_dir), "--address-base", self.base,
                     "--time-scale", f"{self.time_scale:g}")
        if r.returncode != 0:
            raise RuntimeError(f"igw up failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")

    def down(self) -> subprocess.CompletedProcess:
        return self.igw("down", "--stack", self.stack, "--state-dir", str(self.state_dir))

    def state(self) -> dict[str, Any]:
        return json.loads((self.state_dir / "state.json").read_text())

    def scaling(self) -> dict[str, Any]:
        return self.state()["autoscaling"].get(DEPLOYMENT, {})

    def picker_metrics(self) -> str:
        import httpx

        p = next(p for p in self.state()["processes"].values() if p["kind"] == "picker" and "retire_by" not in p)
        return httpx.get(f"http://127.0.0.1:{p['metrics_port']}/metrics", timeout=5).text

    def wait_replicas(self, n: int, timeout: float) -> float:
        """Until the autoscaler runs n replicas (and all are ready); returns the wait."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            s = self.scaling()
            if s.get("replicas") == n and s.get("ready") == n and not s.get("draining"):
                return time.monotonic() - t0
            time.sleep(0.25)
        raise TimeoutError(f"{DEPLOYMENT} did not reach {n} replicas in {timeout:.0f}s: {self.scaling()}")


def stack_file(stacks_dir: Path, name: str, **server_changes: Any) -> str:
    """stacks/Pulumi.scale-to-zero.yaml, with model-server / pool changes, as Pulumi.<name>.yaml."""
    doc = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{STACK}.yaml").read_text())
    cfg = doc["config"]
    server = cfg["inference-gateway:model_servers"][0]
    pool_picker = server_changes.pop("picker", None)
    for k, v in server_changes.items():
        if v is None:
            server.pop(k, None)
        else:
            server[k] = v
    if pool_picker is not None:
        cfg["inference-gateway:pools"][0]["picker"] = pool_picker
    stacks_dir.mkdir(parents=True, exist_ok=True)
    (stacks_dir / f"Pulumi.{name}.yaml").write_text(yaml.safe_dump(copy.deepcopy(doc), sort_keys=False))
    return name


async def sample(run: LocalRun, t0: float, rows: list[dict], stop: asyncio.Event, every: float = 0.5) -> None:
    while not stop.is_set():
        try:
            s = await asyncio.to_thread(run.scaling)
        except (OSError, ValueError):
            s = {}
        rows.append({"t": round(time.monotonic() - t0, 2), "replicas": s.get("replicas"), "ready": s.get("ready"),
                     "demand": s.get("demand")})
        try:
            await asyncio.wait_for(stop.wait(), every)
        except TimeoutError:
            pass


def ramp_rate(peak: float, up: float, hold: float, down: float):
    def rate(t: float) -> float:
        if t < up:
            return peak * t / up
        if t < up + hold:
            return peak
        return max(0.0, peak * (1 - (t - up - hold) / down))
    return rate


def cold_start(run: LocalRun, source: str) -> dict[str, Any]:
    run.wait_replicas(0, 60)
    out = asyncio.run(stream(run.host, run.port, Kind("cold", CRITICAL, source=source)))
    s = run.scaling()
    picker = run.picker_metrics()
    picker_sum = next((float(l.split()[-1]) for l in picker.splitlines() if l.startswith("picker_cold_start_seconds_sum")), None)
    return {"status": out.status, "cause": out.cause, "ttft_s": round(out.ttft or -1, 3),
            "latency_s": round((out.end or out.sent) - out.sent, 3),
            "replica_start_to_ready_s": (s.get("cold_starts") or [{}])[-1].get("seconds"),
            "picker_first_held_to_dispatch_s": picker_sum}


def capacity(run: LocalRun, source: str, seconds: float) -> dict[str, Any]:
    outs = asyncio.run(closed_loop(run.host, run.port, Kind("probe", CRITICAL, source=source), MAX_NUM_SEQS, seconds))
    served = [o for o in outs if o.cause == "served"]
    return {"requests_per_s": round(len(served) / seconds, 3), "clients": MAX_NUM_SEQS, "seconds": seconds,
            "mean_latency_s": round(sum(o.end - o.sent for o in served) / max(1, len(served)), 3),
            "replicas_during_probe": run.scaling().get("replicas")}


def ramp(run: LocalRun, peak: float, up: float, hold: float, down: float, source: str, seed: int = 7,
         settle_s: float = 60.0) -> dict[str, Any]:
    async def main():
        t0 = time.monotonic()
        rows: list[dict] = []
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample(run, t0, rows, stop))
        outs = await open_loop(run.host, run.port, [Kind("ramp", CRITICAL, source=source)],
                               ramp_rate(peak, up, hold, down), up + hold + down, seed=seed, peak=peak)
        traffic_end = time.monotonic() - t0
        deadline = time.monotonic() + settle_s
        while time.monotonic() < deadline and not (rows and rows[-1]["replicas"] == 0):
            await asyncio.sleep(0.5)
        stop.set()
        await sampler
        return t0, outs, rows, traffic_end

    load_before = os.getloadavg()
    t0, outs, rows, traffic_end = asyncio.run(main())
    zero_at = next((r["t"] for r in rows if r["t"] > traffic_end and r["replicas"] == 0), None)
    return {"peak_requests_per_s": round(peak, 3), "up_s": up, "hold_s": hold, "down_s": down, "seed": seed,
            "summary": summary(outs), "max_replicas": max((r["replicas"] or 0) for r in rows),
            "back_to_zero_after_traffic_s": None if zero_at is None else round(zero_at - traffic_end, 2),
            "traffic_end_s": round(traffic_end, 2), "load_average_before": load_before, "load_average_after": os.getloadavg(),
            "timeline": rows, "requests": [o.to_json(t0) for o in outs]}


def overload(stacks_dir: Path, state_dir: Path, port: int, base: str, sources: tuple[str, str], rounds: int,
             seconds: float, factor: float) -> dict[str, Any]:
    """Two fixed replicas; flow control on and off alternately, the same arrivals each round."""
    modes = {"flow-control": {"enabled": True, "ttl_seconds": 30, "no_endpoint_ttl_seconds": 60},
             "shedding-only": {"enabled": False}}
    fixed = dict(scale_to_zero_enabled=None, autoscaling=None, replicas=2)
    name = stack_file(stacks_dir, "overload", **fixed, picker={"flow_control": modes["shedding-only"]})
    run = LocalRun(name, stacks_dir, state_dir, port=port, base=base)
    run.up()
    kinds = [Kind("critical", CRITICAL, source=sources[0], weight=0.25), Kind("standard", STANDARD, source=sources[1], weight=0.75)]
    results: dict[str, list[dict]] = {m: [] for m in modes}
    try:
        cap = capacity(run, sources[0], 10.0)["requests_per_s"] * 2
        rate = factor * cap
        for r in range(rounds):
            for mode in (["shedding-only", "flow-control"] if r % 2 == 0 else ["flow-control", "shedding-only"]):
                stack_file(stacks_dir, "overload", **fixed, picker={"flow_control": modes[mode]})
                run.up()  # applies the changed picker config (a new picker) to the running stack
                time.sleep(2)
                load = os.getloadavg()
                outs = asyncio.run(open_loop(run.host, run.port, kinds, lambda t: rate, seconds, seed=100 + r, peak=rate))
                by = {k.name: summary([o for o in outs if o.kind == k.name]) for k in kinds}
                results[mode].append({"round": r, "load_average": load, **by})
                time.sleep(8)  # the queues drain before the next mode
    finally:
        run.down()
    return {"replicas": 2, "capacity_requests_per_s": round(cap, 3), "offered_requests_per_s": round(rate, 3),
            "mix": {k.name: k.weight for k in kinds}, "seconds_per_round": seconds, "rounds": results}


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ramp_ = result["ramp"]
    rows, reqs = ramp_["timeline"], ramp_["requests"]
    fig, (ax, bx) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    ax.step([r["t"] for r in rows], [r["replicas"] for r in rows], where="post", label="replicas (autoscaler)")
    ax.step([r["t"] for r in rows], [r["ready"] for r in rows], where="post", label="ready replicas", linestyle="--")
    ax.set_ylabel("replicas")
    rate = ramp_rate(ramp_["peak_requests_per_s"], ramp_["up_s"], ramp_["hold_s"], ramp_["down_s"])
    ts = [i * 0.5 for i in range(int(ramp_["traffic_end_s"] * 2) + 1)]
    ax2 = ax.twinx()
    ax2.plot(ts, [rate(t) for t in ts], color="grey", alpha=0.6, label="offered req/s")
    ax2.set_ylabel("offered requests/s")
    ax.legend(loc="upper left")
    ax.set_title(f"Ramp to 4x one replica's capacity ({ramp_['peak_requests_per_s']:.1f} req/s), scale from zero")
    served = [r for r in reqs if r["cause"] == "served"]
    bx.scatter([r["t"] for r in served], [r["ttft"] for r in served], s=4, label="served: TTFT")
    other = [r for r in reqs if r["cause"] != "served"]
    if other:
        bx.scatter([r["t"] for r in other], [1e-3] * len(other), s=10, color="red", marker="x", label="refused / lost")
    bx.set_yscale("log")
    bx.set_ylabel("time to first token (s)")
    bx.set_xlabel("seconds since the ramp started")
    bx.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="benchmarks.autoscaling")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "autoscaling")
    p.add_argument("--quick", action="store_true", help="shorter phases (a smoke run)")
    p.add_argument("--skip-overload", action="store_true")
    a = p.parse_args(argv)
    base = free_base()
    net = base.rsplit(".", 1)[0]
    sources = (f"{net}.200", f"{net}.201")
    tmp = Path(tempfile.mkdtemp(prefix="igw-autoscale-"))
    stacks = tmp / "stacks"
    scale = (0.5 if a.quick else 1.0)
    result: dict[str, Any] = {"stack": STACK, "time_scale": TIME_SCALE, "max_num_seqs": MAX_NUM_SEQS,
                              "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                              "command": "uv run python -m benchmarks.autoscaling" + (" --quick" if a.quick else "")}
    a.out.mkdir(parents=True, exist_ok=True)

    def save() -> None:  # after every phase: a later failure keeps what was measured
        (a.out / "autoscaling.json").write_text(json.dumps(result, indent=1))

    run = LocalRun(stack_file(stacks, STACK), stacks, tmp / "state", port=free_port(), base=base)
    run.up()
    try:
        result["cold_start"] = cold_start(run, sources[0])
        result["capacity"] = capacity(run, sources[0], 15.0 * scale)
        peak = 4 * result["capacity"]["requests_per_s"]
        result["ramp"] = ramp(run, peak, 40 * scale, 30 * scale, 30 * scale, sources[1])
        result["autoscaler_log"] = (run.state_dir / "logs" / "autoscaler.jsonl").read_text().splitlines()[-400:]
    finally:
        run.down()
    save()
    plot(result, a.out / "autoscaling.png")
    if not a.skip_overload:
        result["overload"] = overload(stacks, tmp / "state-overload", free_port(), base, sources,
                                      rounds=2 if a.quick else 4, seconds=30 * scale, factor=2.5)
        save()
    shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps({k: v for k, v in result.items() if k not in ("ramp", "autoscaler_log")}, indent=1))
    print(json.dumps({k: v for k, v in result["ramp"].items() if k not in ("timeline", "requests")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
