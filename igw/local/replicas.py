"""What stands in for a model-server pod locally: one launcher per kind of replica process.

A `ReplicaLauncher` turns a planned `Replica` (address, ports, translated args, adapters) into a
`Proc`, probes its readiness, and tells whether it is idle (for draining). The supervisor picks one
launcher per stack (`replica_launcher`); adding a kind of replica (a real model server, another
runtime's simulator) means adding a launcher, not editing the supervisor.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Protocol

import httpx

from .plan_replicas import Replica
from .process import Proc, free_port

UPSTREAM_SIM_ENV = "IGW_UPSTREAM_SIM"


def replica_fingerprint(r: Replica) -> str:
    """Changes when the replica must be replaced (new address, ports, args, adapters or labels)."""
    return hashlib.sha256(repr((r.address, r.ports, r.args, r.adapters, r.labels)).encode()).hexdigest()[:12]


class ReplicaLauncher(Protocol):
    kind: str
    """Shown in the summary, e.g. ``vllm-sim``."""

    def proc(self, r: Replica, logs: Path) -> Proc: ...

    def ready(self, p: Proc) -> bool:
        """The pod's readinessProbe."""

    def idle(self, p: Proc) -> bool:
        """No request running or waiting (a draining replica may stop)."""

    def set_time_scale(self, p: Proc, time_scale: float) -> None:
        """Apply a new --time-scale to a running replica (no-op where it has no meaning)."""


def _meta(r: Replica) -> dict:
    return {"address": r.address, "ports": list(r.ports), "adapters": [a for a, _ in r.adapters],
            "model": r.model, "deployment": r.deployment, "fingerprint": replica_fingerprint(r),
            "readiness_path": r.readiness_path}


class _HttpProbes:
    """Readiness from the replica's readinessProbe path on its first port."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    def ready(self, p: Proc) -> bool:
        if not p.running():
            return False
        try:
            url = f"http://{p.meta['address']}:{p.meta['ports'][0]}{p.meta.get('readiness_path', '/health')}"
            return self.http.get(url).status_code == 200
        except httpx.HTTPError:
            return False


class SimulatorLauncher(_HttpProbes):
    """Our vLLM simulator (`vllm_simulator.main`), one process per pod on the pod's address."""

    kind = "vllm-sim"

    def __init__(self, http: httpx.Client, time_scale: float) -> None:
        super().__init__(http)
        self.time_scale = time_scale

    def proc(self, r: Replica, logs: Path) -> Proc:
        argv = [sys.executable, "-m", "vllm_simulator.main", *r.args, "--host", r.address, "--port", str(r.ports[0]),
                "--pod-name", r.name, "--time-scale", f"{self.time_scale:g}"]
        for extra in r.ports[1:]:  # data-parallel ranks: one more listener per targetPort
            argv += ["--listen", f"{r.address}:{extra}:{r.name}"]
        if r.adapters:
            argv += ["--lora-modules", *[f"{i}={src}" for i, src in r.adapters]]
        p = Proc(r.name, "simulator", argv, logs / f"{r.name}.log", env={"POD_NAME": r.name})
        p.meta = _meta(r)
        return p

    def idle(self, p: Proc) -> bool:
        try:
            st = self.http.get(f"http://{p.meta['address']}:{p.meta['ports'][0]}/sim/state").json()
        except (httpx.HTTPError, ValueError):
            return True
        return not st.get("running") and not st.get("waiting")

    def set_time_scale(self, p: Proc, time_scale: float) -> None:
        self.time_scale = time_scale
        try:
            self.http.post(f"http://{p.meta['address']}:{p.meta['ports'][0]}/sim/control", json={"time_scale": time_scale})
        except httpx.HTTPError:
            pass


class UpstreamSimLauncher(_HttpProbes):
    """llm-d-inference-sim (a binary given by IGW_UPSTREAM_SIM). It has no --host flag (it listens
    on every address), so each replica gets its own port on 127.0.0.1 and `igw.local.forward` owns
    the pod address. Timing: the 7-8B/H100 preset (TTFT 100 ms, ITL 12 ms) x --time-scale."""

    kind = "llm-d-inference-sim"
    # It understands these vLLM flags; others would make it exit (pflag).
    FLAGS = {"--model", "--served-model-name", "--max-loras", "--max-cpu-loras", "--max-num-seqs",
             "--max-model-len", "--block-size", "--seed", "--data-parallel-size"}

    def __init__(self, http: httpx.Client, binary: str, time_scale: float) -> None:
        super().__init__(http)
        self.binary = binary
        self.time_scale = time_scale

    def proc(self, r: Replica, logs: Path) -> Proc:
        port = free_port()
        args: list[str] = []
        i = 0
        while i < len(r.args):
            a = r.args[i]
            key = a.partition("=")[0]
            has_value = "=" not in a and i + 1 < len(r.args) and not r.args[i + 1].startswith("--")
            if key in self.FLAGS:
                args += [a, r.args[i + 1]] if has_value else [a]
            i += 2 if has_value else 1
        ttft = max(1, round(100 * self.time_scale))
        itl = max(1, round(12 * self.time_scale))
        argv = [self.binary, *args, "--port", str(port), "--time-to-first-token", str(ttft),
                "--inter-token-latency", str(itl)]
        if r.adapters:
            argv += ["--lora-modules", *[f'{{"name":"{a}","path":"{src}"}}' for a, src in r.adapters]]
        fwd = [sys.executable, "-m", "igw.local.forward", f"{r.address}:{r.ports[0]}", f"127.0.0.1:{port}", "--", *argv]
        p = Proc(r.name, "simulator", fwd, logs / f"{r.name}.log", env={"POD_NAME": r.name})
        p.meta = {**_meta(r), "upstream_port": port}
        return p

    def idle(self, p: Proc) -> bool:
        return True  # no state endpoint: the drain waits only for the endpoints to move

    def set_time_scale(self, p: Proc, time_scale: float) -> None:
        pass  # fixed at start


def replica_launcher(http: httpx.Client, time_scale: float, upstream_sim: str | None,
                     vllm_pods: str = "vllm-sim") -> ReplicaLauncher:
    """vLLM pods: our simulator, llm-d-inference-sim, or real vLLM (`vllm_pods` "vllm-cpu", a stack's
    igw-local:replicas; vllm_replicas.py); other runtimes' pods: our simulator speaking their API
    (runtime_launcher.py)."""
    from .egress import EgressLauncher
    from .runtime_launcher import ByRuntime, RuntimeSimulatorLauncher

    vllm: ReplicaLauncher
    if vllm_pods == "vllm-cpu":
        from .vllm_replicas import VllmCpuLauncher

        vllm = VllmCpuLauncher(http)
    else:
        vllm = UpstreamSimLauncher(http, upstream_sim, time_scale) if upstream_sim else SimulatorLauncher(http, time_scale)
    return ByRuntime(vllm, RuntimeSimulatorLauncher(http, time_scale), EgressLauncher(http))
