"""A stack of its own for tests that kill, freeze and overload things: the `local` stack with two
pickers (leader election on a short Lease), a 500 ms picker message timeout, and two replicas
that each run at most 4 sequences at H100 speed (time scale 1.0), so a few dozen requests per
second are several times what they can serve.

It runs on its own loopback range and port, with its own state directory, and is torn down with
`igw down` (nothing may be left behind). `IGW_FAULTS_ADDRESS_BASE` pins the range (a developer's
own block of 127.0.x.y); by default a free one is picked at random like the shared e2e stack.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.soak import derived_stack_file
from benchmarks.soak_traffic import RequestKind, Traffic, process_usage

from igw.local.process import free_address_base, free_port

from .conftest import LocalStack, igw, pid_alive

BASE = "meta-llama/Llama-3.1-8B-Instruct"
LEASE_S = 3
MESSAGE_TIMEOUT_S = 0.5


def fault_stack_file(stacks_dir: Path, name: str = "faults") -> str:
    derived_stack_file(stacks_dir, name, server={"replicas": 2, "extra_args": ["--max-num-seqs", "4"]},
                       picker={"replicas": 2, "lease_duration_seconds": LEASE_S,
                               "message_timeout_ms": int(MESSAGE_TIMEOUT_S * 1000)})
    return name


class FaultStack(LocalStack):
    pool = "vllm-llama3-8b-instruct"

    def pickers(self) -> list[dict[str, Any]]:
        return sorted((p for p in self.procs("picker") if p["pool"] == self.pool), key=lambda p: p["name"])

    def leader(self, timeout: float = 20) -> dict[str, Any]:
        """The one picker that is ready (the Lease holder), once the supervisor has seen it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready = [p for p in self.pickers() if p["ready"] and p["running"]]
            if len(ready) == 1:
                return ready[0]
            time.sleep(0.1)
        raise AssertionError(f"no single ready picker: {json.dumps(self.pickers(), indent=1)}")

    def picker_metric(self, p: dict[str, Any], name: str) -> list[str]:
        text = httpx.get(f"http://127.0.0.1:{p['metrics_port']}/metrics", timeout=5).text
        return [l for l in text.splitlines() if l.startswith(name)]

    def traffic(self, kinds: list[RequestKind], rate: float, seed: int = 1, timeout_s: float = 60.0) -> Traffic:
        return Traffic("127.0.0.1", self.port, kinds, rate, seed=seed, timeout_s=timeout_s)

    def run(self, traffic: Traffic, duration_s: float, at: list[tuple[float, Any]] = ()) -> list:
        """Run the traffic for duration_s; call each action at its offset (seconds) meanwhile."""
        async def main():
            async def actions():
                t0 = time.monotonic()
                for offset, action in at:
                    await asyncio.sleep(max(0.0, t0 + offset - time.monotonic()))
                    await asyncio.to_thread(action)
            return (await asyncio.gather(traffic.run(duration_s), actions()))[0]
        return asyncio.run(main())

    def access_rows(self, ids: set[str], timeout: float = 10) -> dict[str, dict[str, Any]]:
        rows = self.access_log(lambda r: r.get("user") in ids, len(ids), timeout)
        return {r["user"]: r for r in rows}

    def usage(self) -> dict[str, tuple[int, int]]:
        """(RSS KiB, fds) of every process of the stack, by name."""
        st = self.state()
        out = {name: process_usage(p["pid"]) for name, p in st["processes"].items() if p.get("pid")}
        out["supervisor"] = process_usage(st["supervisor_pid"])
        return {k: v for k, v in out.items() if v is not None}


def kill(p: dict[str, Any], sig: int = signal.SIGKILL) -> float:
    os.kill(p["pid"], sig)
    return time.monotonic()


def start_fault_stack(tmp: Path) -> FaultStack:
    stacks = tmp / "stacks"
    name = fault_stack_file(stacks)
    state_dir = tmp / "state"
    port = free_port()
    base = os.environ.get("IGW_FAULTS_ADDRESS_BASE") or free_address_base(n=2)
    r = igw("up", "--stack", name, "--stacks-dir", str(stacks), "--detach", "--port", str(port),
            "--state-dir", str(state_dir), "--address-base", base, "--time-scale", "1.0")
    assert r.returncode == 0, f"igw up failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    return FaultStack(state_dir, port, ["--stack", name, "--stacks-dir", str(stacks)])


def stop_fault_stack(stack: FaultStack) -> None:
    st = stack.state()
    pids = [p["pid"] for p in st["processes"].values()] + [st["supervisor_pid"]]
    d = igw("down", "--stack", "faults", "--state-dir", str(stack.state_dir))
    stack.http.close()
    leftovers = [pid for pid in pids if pid_alive(pid)]
    for pid in leftovers:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
    assert d.returncode == 0, d.stdout + d.stderr
    assert not leftovers, f"processes left after igw down: {leftovers}"
