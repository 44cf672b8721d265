"""Capacity follows demand, end to end (issue #17): `igw up --stack scale-to-zero` (the committed
stack: 0 to 4 replicas on the queue, target 2 per replica, scale-down after 20 s, seed 002's
scale_to_zero_enabled) behind the real Envoy and picker.

- scale from zero: the pool idles at zero replicas; a request waits in the picker while the
  autoscaler starts a replica, then is served; the cold start is reported by the autoscaler and
  by the picker;
- a ramp from 0 to 4x one replica's capacity (measured here, closed loop) and back: nothing is
  lost (TTL-expired refusals would be counted, none are expected), the autoscaler scales up
  during the ramp and back to zero once the scale-down delay has passed.

Its own stack, address range (IGW_AUTOSCALE_ADDRESS_BASE pins it) and state directory; about
2.5 minutes. `uv run python -m benchmarks.autoscaling` runs the long version and writes the
committed results (benchmarks/results/autoscaling/).
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from benchmarks.autoscaling import (CRITICAL, DEPLOYMENT, LocalRun, capacity, free_base, free_port, ramp,
                                    stream)
from benchmarks.stream_client import Kind

from .conftest import pid_alive

ROOT = Path(__file__).resolve().parents[2]
SCALE_DOWN_DELAY_S = 20


def figures(title: str, **values) -> None:
    print(f"\n[{title}] " + ", ".join(f"{k}={v}" for k, v in values.items()))


@pytest.fixture(scope="module")
def s2z(tmp_path_factory):
    base = free_base()
    net = base.rsplit(".", 1)[0]
    run = LocalRun("scale-to-zero", ROOT / "stacks", tmp_path_factory.mktemp("s2z") / "state", port=free_port(), base=base)
    run.sources = (f"{net}.200", f"{net}.201")  # type: ignore[attr-defined]
    run.up()
    yield run
    st = run.state()
    pids = [p["pid"] for p in st["processes"].values() if p.get("pid")] + [st["supervisor_pid"]]
    d = run.down()
    assert d.returncode == 0, d.stdout + d.stderr
    time.sleep(0.5)
    assert [p for p in pids if pid_alive(p)] == [], "processes left after igw down"


def test_01_a_request_to_a_pool_at_zero_waits_for_a_replica_and_is_served(s2z):
    assert s2z.scaling()["replicas"] == 0 and s2z.state()["pools"][DEPLOYMENT]["replicas"] == []
    # Seed 002/004's endpoint state: a pool scaled to zero is ready to serve (a request wakes it).
    status = s2z.igw("status", "--stack", "scale-to-zero", "--state-dir", str(s2z.state_dir), "--json")
    assert status.returncode == 0, status.stdout + status.stderr
    entity = json.loads(status.stdout)["endpoints"][0]["served_entities"][0]["state"]
    assert entity == {"deployment": "DEPLOYMENT_READY", "deployment_state_message":
                      "0/0 pods ready; scaled to zero: a request waits in the picker while a replica starts"}
    out = asyncio.run(stream(s2z.host, s2z.port, Kind("cold", CRITICAL, source=s2z.sources[0])))
    assert (out.status, out.cause) == (200, "served"), out
    scaling = s2z.scaling()
    assert scaling["replicas"] == 1 and scaling["cold_starts"][-1]["replica"] == f"{DEPLOYMENT}-0"
    picker = s2z.picker_metrics()
    assert "picker_cold_start_seconds_count 1" in picker
    assert 'picker_flow_queue_wait_seconds_count{priority="100",outcome="dispatched"} 1' in picker
    figures("scale from zero", ttft_s=round(out.ttft, 3), replica_start_to_ready_s=scaling["cold_starts"][-1]["seconds"],
            picker_cold_start_s=next(l.split()[-1] for l in picker.splitlines() if l.startswith("picker_cold_start_seconds_sum")))


def test_02_a_ramp_to_four_times_capacity_scales_up_loses_nothing_and_scales_back_to_zero(s2z):
    s2z.wait_replicas(1, 30)
    # One replica's capacity: as many closed-loop clients as it runs sequences (a transient queue
    # at a step boundary may wake a second replica; the clients, not the replicas, bound it).
    cap = capacity(s2z, s2z.sources[0], 8.0)
    assert cap["requests_per_s"] > 0
    peak = 4 * cap["requests_per_s"]
    result = ramp(s2z, peak, up=15, hold=15, down=10, source=s2z.sources[1], settle_s=SCALE_DOWN_DELAY_S + 25)
    summary = result["summary"]
    figures("ramp 0 -> 4x capacity -> 0", capacity_rps=cap["requests_per_s"], peak_rps=round(peak, 2),
            requests=summary["requests"], served=summary["served"], refused=summary["refused_by"], lost=summary["lost"],
            ttft_p50_s=summary["ttft_p50_s"], ttft_p99_s=summary["ttft_p99_s"], max_replicas=result["max_replicas"],
            back_to_zero_s=result["back_to_zero_after_traffic_s"], load_average=result["load_average_after"])
    assert summary["lost"] == 0
    assert set(summary["refused_by"]) <= {"429 rejected-ttl-expired", "503 rejected-ttl-expired"}
    assert result["max_replicas"] >= 3, result["timeline"]
    back = result["back_to_zero_after_traffic_s"]
    assert back is not None and SCALE_DOWN_DELAY_S - 2 <= back <= SCALE_DOWN_DELAY_S + 25, result["timeline"][-20:]
    assert s2z.scaling()["replicas"] == 0
