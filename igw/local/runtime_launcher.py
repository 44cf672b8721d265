"""Replicas of seed 003's runtimes: the simulator speaking Caikit, TGIS or KServe v2 (runtime_pods.py).

`RuntimeSimulatorLauncher` starts one `vllm-sim --runtime <runtime>` per pod on the pod's
address, HTTP on the container's `http` port and gRPC on its `grpc` port, and probes readiness
on the runtime's own readiness path (Caikit `/health`, TGIS `/health` on its HTTP port, KServe
v2 `/v2/health/ready`). `ByRuntime` is the launcher the supervisor uses: vLLM pods go to the
stack's vLLM launcher (our simulator, or llm-d-inference-sim), runtime pods to this one.
"""

from __future__ import annotations

import sys
from pathlib import Path

import httpx

from .plan_replicas import Replica
from .process import Proc
from .replicas import ReplicaLauncher, _HttpProbes, _meta


class RuntimeSimulatorLauncher(_HttpProbes):
    kind = "vllm-sim --runtime"

    def __init__(self, http: httpx.Client, time_scale: float) -> None:
        super().__init__(http)
        self.time_scale = time_scale

    def proc(self, r: Replica, logs: Path) -> Proc:
        argv = [sys.executable, "-m", "vllm_simulator.main", *r.args, "--host", r.address, "--port", str(r.ports[0]),
                "--pod-name", r.name, "--time-scale", f"{self.time_scale:g}"]
        if r.grpc_port is not None:
            argv += ["--grpc-port", str(r.grpc_port)]
        p = Proc(r.name, "simulator", argv, logs / f"{r.name}.log", env={"POD_NAME": r.name})
        p.meta = {**_meta(r), "runtime": r.runtime, "grpc_port": r.grpc_port, "models": list(r.models)}
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


class ByRuntime:
    """The supervisor's launcher: each pod to the launcher of the API it speaks (external models'
    egress proxies to egress.py)."""

    def __init__(self, vllm: ReplicaLauncher, runtimes: RuntimeSimulatorLauncher, egress: ReplicaLauncher | None = None) -> None:
        self.vllm = vllm
        self.runtimes = runtimes
        self.egress = egress
        self.kind = vllm.kind
        # Real vLLM takes minutes to start (vllm_replicas.py); simulators go by the --timeout.
        self.startup_timeout_s = getattr(vllm, "startup_timeout_s", 0.0)

    def _for(self, runtime: str) -> ReplicaLauncher:
        if runtime == "vllm":
            return self.vllm
        if runtime == "external" and self.egress is not None:
            return self.egress
        return self.runtimes

    def _of(self, p: Proc) -> ReplicaLauncher:
        return self._for(p.meta.get("runtime", "vllm"))

    def proc(self, r: Replica, logs: Path) -> Proc:
        return self._for(r.runtime).proc(r, logs)

    def ready(self, p: Proc) -> bool:
        return self._of(p).ready(p)

    def idle(self, p: Proc) -> bool:
        return self._of(p).idle(p)

    def set_time_scale(self, p: Proc, time_scale: float) -> None:
        self.runtimes.time_scale = time_scale
        self._of(p).set_time_scale(p, time_scale)
