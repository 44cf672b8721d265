"""The data plane around the real API server: pods that exist only as API objects (there is no
kubelet) with simulated vLLM replicas listening on their pod IPs, the real picker process in
Kubernetes discovery mode, and a real Envoy in front of it.

Every process binds its own address in 127.0.30.0/24 (ports are then fixed constants from
30000-30999): the cluster takes .1-.19, everything else is handed out by `Addresses`.
"""

from __future__ import annotations

import itertools
import re
import sys
import time
from pathlib import Path
from typing import Any

import grpc
import httpx
import orjson
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from endpoint_picker.envoy_bootstrap import build_bootstrap
from endpoint_picker.testing.envoy import envoy_binary
from igw.kube import KubeClient, find_free_host, until
from igw.local.plan_replicas import Replica
from igw.local.process import Proc
from vllm_simulator import SimHandle, start_in_thread
from vllm_simulator.main import configs_from_args

from .bundle import PickerBundle, flag

NETWORK = "127.0.30"
CLUSTER_HOSTS = [f"{NETWORK}.{i}" for i in range(1, 20)]
CLUSTER_BASE_PORT = 30000
SIM_PORT = 30080            # the pool's targetPort in the tests' copy of each InferencePool
PICKER_PORTS = (30100, 30101, 30102)   # ext_proc, health, metrics
GATEWAY_PORT = 30200
PROXY_PORT = 30300


class Addresses:
    """Fresh loopback addresses in 127.0.30.20-250, each checked free for the given ports."""

    def __init__(self) -> None:
        self._next = itertools.count(20)

    def take(self, *ports: int) -> str:
        candidates = (f"{NETWORK}.{n}" for n in self._next if n <= 250)
        return find_free_host(candidates, ports or (SIM_PORT,))


# --------------------------------------------------------------------------- pods

def pod_from_template(deployment: dict[str, Any], name: str, namespace: str,
                      extra_labels: dict[str, str] | None = None) -> dict[str, Any]:
    """The pod a ReplicaSet of `deployment` would create (labels and spec from its template)."""
    template = deployment["spec"]["template"]
    labels = {**(template["metadata"].get("labels") or {}), **(extra_labels or {})}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": template["spec"]}


def set_pod_status(admin: KubeClient, namespace: str, name: str, *, ip: str, ready: bool) -> dict[str, Any]:
    """What the kubelet would report: Running with a pod IP, Ready True/False."""
    status = "True" if ready else "False"
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return admin.patch("v1", "Pod", name, {"status": {
        "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": status, "lastTransitionTime": now},
                       {"type": "ContainersReady", "status": status, "lastTransitionTime": now}],
    }}, namespace=namespace, subresource="status")


class SimulatedPod:
    """A pod object plus a vLLM simulator on its pod IP, configured like the model-server
    container the Deployment renders (model, LoRA adapters), named after the pod."""

    def __init__(self, admin: KubeClient, bundle: PickerBundle, replica: Replica, namespace: str,
                 name: str, ip: str, *, extra_labels: dict[str, str] | None = None) -> None:
        self.admin, self.namespace, self.name, self.ip = admin, namespace, name, ip
        argv = [*replica.args, "--host", ip, "--port", str(SIM_PORT), "--pod-name", name, "--time-scale", "0.01"]
        if replica.adapters:
            argv += ["--lora-modules", *[f"{a}={src}" for a, src in replica.adapters]]
        self.sim: SimHandle = start_in_thread(configs_from_args(argv))
        self.object = admin.create(pod_from_template(bundle.model_server, name, namespace, extra_labels))

    @property
    def endpoint(self) -> str:
        return f"{self.ip}:{SIM_PORT}"

    def set_ready(self, ready: bool) -> None:
        set_pod_status(self.admin, self.namespace, self.name, ip=self.ip, ready=ready)

    def delete(self) -> None:
        self.admin.delete("v1", "Pod", self.name, namespace=self.namespace, grace_period_s=0)

    def state(self) -> dict[str, Any]:
        return httpx.get(f"http://{self.endpoint}/sim/state", timeout=5).json()

    def stop(self) -> None:
        self.sim.stop()


# --------------------------------------------------------------------------- picker

def _replace_flags(args: list[str], values: dict[str, str | None]) -> list[str]:
    """args with each `--flag VALUE` in `values` set to the new value (None drops the flag);
    flags not present are appended."""
    out, i, seen = [], 0, set()
    while i < len(args):
        a = args[i]
        key = a.split("=", 1)[0]
        takes_value = "=" not in a and i + 1 < len(args) and not args[i + 1].startswith("--")
        if key in values:
            seen.add(key)
            if values[key] is not None:
                out += [key, values[key]]
            i += 2 if takes_value else 1
            continue
        out.append(a)
        i += 1
    for key, value in values.items():
        if key not in seen and value is not None:
            out += [key, value]
    return out


class KubePicker:
    """The real `picker` process with the rendered Deployment's arguments, pointed at the test
    namespace and at the API server through a kubeconfig (its ServiceAccount's token)."""

    def __init__(self, bundle: PickerBundle, namespace: str, kubeconfig: Path, address: str, workdir: Path,
                 *, name: str = "picker") -> None:
        self.address, self.name = address, name
        workdir.mkdir(parents=True, exist_ok=True)
        config = workdir / f"{name}.yaml"
        config.write_text(bundle.picker_config())
        grpc_port, health_port, metrics_port = PICKER_PORTS
        args = _replace_flags(bundle.picker_args, {
            "--pool-namespace": namespace, "--config-file": str(config), "--kubeconfig": str(kubeconfig),
            "--grpc-port": str(grpc_port), "--grpc-health-port": str(health_port), "--metrics-port": str(metrics_port),
            "--bind-address": address, "--log-level": "info",
            "--api-keys-file": None,   # its Secret is masked in the render
            "--cert-path": None,       # the rendered TLS Secret is not here: the picker's self-signed default
        })
        assert flag(args, "--discovery") == "kubernetes", args
        self.proc = Proc(name, "picker", [sys.executable, "-m", "endpoint_picker.main", *args], workdir / f"{name}.log")
        self.proc.start()
        self._channel = grpc.insecure_channel(f"{address}:{health_port}")
        self.health = health_pb2_grpc.HealthStub(self._channel)

    @property
    def ext_proc_address(self) -> str:
        return f"{self.address}:{PICKER_PORTS[0]}"

    def serving(self, service: str = "readiness") -> bool:
        try:
            r = self.health.Check(health_pb2.HealthCheckRequest(service=service), timeout=1)
        except grpc.RpcError:
            return False
        return r.status == health_pb2.HealthCheckResponse.SERVING

    def endpoints(self) -> set[str] | None:
        """The endpoints the picker currently schedules to (from its own metrics); None while
        its metrics port is not up yet."""
        try:
            text = httpx.get(f"http://{self.address}:{PICKER_PORTS[2]}/metrics", timeout=5).text
        except httpx.TransportError:
            return None
        return set(re.findall(r'^picker_metrics_age_seconds\{endpoint="([^"]+)"\}', text, re.M))

    def wait_endpoints(self, expected: set[str], timeout: float = 20) -> None:
        try:
            until(lambda: self.endpoints() == expected, timeout=timeout, what=f"{self.name} endpoints == {sorted(expected)}")
        except TimeoutError as e:
            raise AssertionError(f"{e}; it has {self.endpoints()}\n{self.log()}") from None

    def log(self, lines: int = 60) -> str:
        return self.proc.tail(lines)

    def stop(self) -> None:
        self._channel.close()
        self.proc.stop(timeout=10)


# --------------------------------------------------------------------------- gateway

class Gateway:
    """Real Envoy with the picker's ext_proc filter; the pool cluster lists every address a pod
    of the test may get (the picker chooses among them)."""

    def __init__(self, address: str, picker: KubePicker, endpoints: list[str], workdir: Path,
                 *, failure_mode_allow: bool = False) -> None:
        boot = build_bootstrap(GATEWAY_PORT, picker.ext_proc_address, endpoints=endpoints, listener_address=address,
                               picker_tls=True, failure_mode_allow=failure_mode_allow, retries=0)
        config = workdir / "envoy.yaml"
        config.write_text(yaml.safe_dump(boot))
        self.proc = Proc("envoy", "envoy", [envoy_binary(), "-c", str(config), "--concurrency", "1", "-l", "warning",
                                            "--base-id", address.replace(".", ""), "--disable-hot-restart"],
                         workdir / "envoy.log")
        self.proc.start()
        self.url = f"http://{address}:{GATEWAY_PORT}"
        self.http = httpx.Client(timeout=15)
        until(self._listening, timeout=15, what="envoy listening")

    def _listening(self) -> bool:
        if not self.proc.running():
            raise RuntimeError("envoy exited:\n" + self.proc.tail(40))
        try:
            self.http.get(self.url + "/health")
            return True
        except httpx.TransportError:
            return False

    def complete(self, model: str, prompt: str = "hello", **extra: Any) -> httpx.Response:
        body = {"model": model, "prompt": prompt, "max_tokens": 2, **extra}
        return self.http.post(self.url + "/v1/completions", content=orjson.dumps(body),
                              headers={"content-type": "application/json"})

    def stop(self) -> None:
        self.http.close()
        self.proc.stop()
