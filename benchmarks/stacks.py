"""Start what a strategy needs: simulated replicas, Envoy (direct LB or + a picker), upstream EPP.

Replicas listen on their own loopback addresses (127.0.3.1, 127.0.3.2, ...: one "pod IP" each,
same port), like pods behind an InferencePool; Linux routes all of 127/8 to lo without setup.
IGW_LOOPBACK_NET / IGW_PORT_RANGE confine every listener to one slice (endpoint_picker.loopback).
"""

from __future__ import annotations

import json
import os
import shlex
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import yaml
from endpoint_picker.envoy_bootstrap import build_bootstrap
from endpoint_picker.testing.picker import pool_manifest, write_endpoints, write_manifests

from . import upstream_epp
from .procs import (Proc, direct_bootstrap, envoy_binary, free_port, local_host, pod_host, python, raise_circuit_breakers,
                    wait_port)

POOL = "bench-pool"
UPSTREAM_NOT_RUN = ("not run: no binary (set IGW_UPSTREAM_EPP to an llm-d-router `epp`); the benchmark never builds "
                    "the reference EPP itself (the Go module proxy answers 403 for github.com/llm-d/llm-d-router, "
                    "and its code is not ours to vendor)")
UPSTREAM_SIM_NOT_RUN = ("not run: no binary (set IGW_UPSTREAM_SIM); the Go module proxy here answers 403 for "
                        "github.com/llm-d/llm-d-inference-sim, so every quality run uses our simulator")


class NotRun(Exception):
    """A strategy that cannot run on this machine; the message is the reason for the report."""


def pod_addresses(n: int, port: int) -> list[str]:
    return [f"{pod_host(3, i)}:{port}" for i in range(n)]


def free_pod_port() -> int:
    return free_port(pod_host(3, 0))


class SimCluster:
    """N simulated vLLM replicas (ours, in `processes` processes; or the upstream binary)."""

    def __init__(self, cluster: dict[str, Any], model: str) -> None:
        self.n = int(cluster["replicas"])
        self.port = free_pod_port()
        self.addresses = pod_addresses(self.n, self.port)
        self.procs: list[Proc] = []
        self.cluster = cluster
        self.model = model
        upstream = os.environ.get("IGW_UPSTREAM_SIM") if cluster.get("simulator") == "upstream" else None
        try:
            if upstream:
                self._start_upstream(upstream)
            else:
                self._start_ours()
        except BaseException:
            self.stop()
            raise

    def _common(self) -> list[str]:
        c = self.cluster
        args = ["--model", self.model, "--time-scale", str(c["time_scale"]), "--block-size", str(c.get("block_size", 16)),
                "--max-num-seqs", str(c.get("max_num_seqs", 256)), "--seed", str(c.get("seed", 0))]
        if c.get("num_gpu_blocks"):
            args += ["--num-gpu-blocks", str(c["num_gpu_blocks"])]
        if c.get("max_num_batched_tokens"):
            args += ["--max-num-batched-tokens", str(c["max_num_batched_tokens"])]
        if c.get("lora_modules"):
            args += ["--lora-modules", *[f"{m}={m}" for m in c["lora_modules"]], "--max-loras", str(c.get("max_loras", 1))]
            if c.get("max_cpu_loras"):
                args += ["--max-cpu-loras", str(c["max_cpu_loras"])]
        return args

    def _start_ours(self) -> None:
        k = max(1, min(int(self.cluster.get("sim_processes", 2)), self.n))
        for p in range(k):
            listen: list[str] = []
            for i in range(p, self.n, k):
                listen += ["--listen", f"{self.addresses[i]}:sim-{i}"]
            proc = Proc(f"sim{p}", [python(), "-m", "vllm_simulator.main", *self._common(), *listen])
            self.procs.append(proc)
        for a in self.addresses:
            h, _, port = a.rpartition(":")
            wait_port(h, int(port), 30)

    def _start_upstream(self, binary: str) -> None:
        tmpl = os.environ.get("IGW_UPSTREAM_SIM_ARGS",
                              "--port {port} --model {model} --max-num-seqs {max_num_seqs} --enable-kvcache "
                              "--kv-cache-size {num_gpu_blocks} --block-size {block_size}")
        for i, a in enumerate(self.addresses):
            h, _, port = a.rpartition(":")
            args = tmpl.format(port=port, host=h, model=self.model, max_num_seqs=self.cluster.get("max_num_seqs", 256),
                               num_gpu_blocks=self.cluster.get("num_gpu_blocks", 1024),
                               block_size=self.cluster.get("block_size", 16))
            self.procs.append(Proc(f"upstream-sim{i}", [binary, *shlex.split(args)], env={"POD_NAME": f"sim-{i}"},
                                   wait_for=(h, int(port))))

    def cpu(self) -> float:
        return sum(p.cpu() for p in self.procs)

    def stop(self) -> None:
        for p in self.procs:
            p.stop()


class Gateway:
    """Envoy (+ picker) in front of `endpoints`; `host`/`port` is where clients send requests."""

    def __init__(self, strategy: Any, endpoints: Sequence[str], picker_config: dict[str, Any] | None = None,
                 envoy_concurrency: int = 1) -> None:
        self.strategy = strategy
        self.endpoints = list(endpoints)
        self.host = local_host()
        self.port = free_port()
        self.envoy: Proc | None = None
        self.picker: Proc | None = None
        self.metrics_port: int | None = None
        self.dir = Path(tempfile.mkdtemp(prefix="igw-bench-", dir=_tmp()))
        try:
            if strategy.type == "envoy":
                boot = direct_bootstrap(self.port, self.endpoints, strategy.lb)
            elif strategy.type == "picker":
                grpc_port = self._start_picker(picker_config or {})
                boot = raise_circuit_breakers(build_bootstrap(self.port, f"{local_host()}:{grpc_port}", endpoints=self.endpoints,
                                                              route_timeout_s=600.0, listener_address=local_host()))
            elif strategy.type == "upstream-epp":
                grpc_port = self._start_upstream_epp(picker_config or {})
                boot = upstream_epp.envoy_bootstrap(self.port, f"{local_host()}:{grpc_port}", local_host())
            else:
                raise ValueError(f"no gateway for strategy type {strategy.type}")
            self._start_envoy(boot, envoy_concurrency)
        except BaseException:
            self.stop()
            raise

    def _pods(self) -> list[dict[str, Any]]:
        return [{"name": f"pod-{i}", "namespace": "default", "address": e.rpartition(":")[0],
                 "labels": {"app": POOL}, "ready": True} for i, e in enumerate(self.endpoints)]

    def _write_discovery(self) -> tuple[Path, Path]:
        port = int(self.endpoints[0].rpartition(":")[2])
        if any(int(e.rpartition(":")[2]) != port for e in self.endpoints):
            raise ValueError("all endpoints must share one port (InferencePool targetPorts)")
        mdir = self.dir / "manifests"
        mdir.mkdir()
        write_manifests(mdir / "pool.yaml", [pool_manifest(POOL, ports=(port,))])
        ep = self.dir / "endpoints.yaml"
        write_endpoints(ep, self._pods())
        return mdir, ep

    def _start_picker(self, config: dict[str, Any]) -> int:
        mdir, ep = self._write_discovery()
        cfg = self.dir / "picker.yaml"
        cfg.write_text(yaml.safe_dump(config))
        grpc_port, health_port, self.metrics_port = free_port(), free_port(), free_port()
        self.picker = Proc("picker", [python(), "-m", "endpoint_picker.main", "--pool-name", POOL,
                                      "--pool-namespace", "default", "--config-file", str(cfg), "--discovery", "files",
                                      "--manifests-dir", str(mdir), "--endpoints-file", str(ep),
                                      "--grpc-port", str(grpc_port), "--grpc-health-port", str(health_port),
                                      "--metrics-port", str(self.metrics_port), "--bind-address", local_host(),
                                      "--log-level", "warning", "--secure-serving=false"],  # scheduling, not TLS, is measured
                           wait_for=(local_host(), grpc_port))
        return grpc_port

    def _start_upstream_epp(self, config: dict[str, Any]) -> int:
        self.picker, grpc_port, self.metrics_port = start_upstream_epp(self.dir, self.endpoints, config)
        return grpc_port

    def _start_envoy(self, boot: dict[str, Any], concurrency: int) -> None:
        path = self.dir / "envoy.json"
        path.write_text(json.dumps(boot))
        self.envoy = Proc("envoy", [envoy_binary(), "-c", str(path), "--concurrency", str(concurrency), "-l", "error",
                                    "--base-id", str(self.port), "--disable-hot-restart"],
                          wait_for=(local_host(), self.port))

    def procs(self) -> dict[str, Proc]:
        out = {}
        if self.envoy:
            out["envoy"] = self.envoy
        if self.picker:
            out["picker"] = self.picker
        return out

    def stop(self) -> None:
        for p in (self.envoy, self.picker):
            if p is not None:
                p.stop()


def wildcard_free_port() -> int:
    """A port free on every IPv4 address. The reference EPP listens on all interfaces (`:port`,
    no bind-address flag), so a port free on our loopback address alone can still be held
    elsewhere, e.g. as a client connection's ephemeral port on 127.0.0.1 (the kernel's ephemeral
    range usually contains IGW_PORT_RANGE); the EPP then exits 1 right after starting, without
    logging why."""
    return free_port("0.0.0.0")


def start_upstream_epp(work_dir: Path, endpoints: Sequence[str], config: dict[str, Any]) -> tuple[Proc, int, int]:
    """The reference EPP with file discovery (upstream_epp.py): (process, gRPC port, metrics port),
    once its gRPC health says the ext_proc service is SERVING (it is only after discovery loaded
    the endpoints). NotRun without IGW_UPSTREAM_EPP."""
    binary = os.environ.get("IGW_UPSTREAM_EPP")
    if not binary:
        raise NotRun(UPSTREAM_NOT_RUN)
    ep = work_dir / "epp-endpoints.yaml"
    ep.write_text(yaml.safe_dump(upstream_epp.endpoints_document(endpoints)))
    cfg = work_dir / "epp-config.yaml"
    cfg.write_text(yaml.safe_dump(upstream_epp.epp_config(ep, upstream_epp.weights_from(config)), sort_keys=False))
    grpc_port, health_port, metrics_port = wildcard_free_port(), wildcard_free_port(), wildcard_free_port()
    proc = Proc("upstream-epp", upstream_epp.command(binary, pool=POOL, config_file=cfg, endpoints_file=ep,
                                                      grpc_port=grpc_port, health_port=health_port,
                                                      metrics_port=metrics_port),
                wait_for=(local_host(), grpc_port), timeout=60)
    wait_serving(local_host(), health_port, "envoy.service.ext_proc.v3.ExternalProcessor", 60, proc)
    return proc, grpc_port, metrics_port


def wait_serving(host: str, port: int, service: str, timeout: float, proc: Proc) -> None:
    """Poll grpc.health.v1 until `service` is SERVING; fail with the process log otherwise."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + timeout
    last = "no answer"
    with grpc.insecure_channel(f"{host}:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if proc.proc.poll() is not None:
                break
            try:
                status = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=1).status
                if status == health_pb2.HealthCheckResponse.SERVING:
                    return
                last = health_pb2.HealthCheckResponse.ServingStatus.Name(status)
            except grpc.RpcError as e:
                last = f"{e.code().name}: {e.details()}"
            time.sleep(0.2)
    proc.stop()
    raise RuntimeError(f"{proc.name} never reported {service} SERVING on {host}:{port} (last: {last}):\n{proc.log()}")


def _tmp() -> str:
    d = Path(__file__).parent / ".work" / "tmp"
    d.mkdir(parents=True, exist_ok=True)
    return str(d)
