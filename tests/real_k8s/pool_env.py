"""One rendered InferencePool brought up against the real API server, in a test namespace:

- as admin: the picker's ServiceAccount, Roles and RoleBindings and the pool's InferencePool,
  InferenceObjectives and InferenceModelRewrites, copied from the render into the namespace
  (the pool's targetPort becomes SIM_PORT, a port of the tests' range);
- a bound token of that ServiceAccount (TokenRequest) in a file, and a kubeconfig naming it:
  the picker talks to the API server with exactly the rendered Role's permissions;
- the real picker process with the rendered Deployment's arguments and picker.yaml;
- a real Envoy in front of it (FailClose: a picker decision is never masked by fail-open);
- pods created through the API from the model-server Deployment's template, their status
  patched Running/Ready with a loopback pod IP where a simulator listens (there is no kubelet).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from igw.kube import KubeClient, LocalCluster
from igw.local.plan import build_plan
from igw.local.plan_replicas import Replica
from igw.stackfile import available_stacks

from .bundle import PickerBundle, picker_bundles
from .dataplane import GATEWAY_PORT, PICKER_PORTS, SIM_PORT, Addresses, Gateway, KubePicker, SimulatedPod
from .manifests import relocate, stack_manifests

FIELD_MANAGER = "inference-gateway"


def choose_bundle(*, leader_election: bool = False) -> PickerBundle:
    """The first rendered pool (stacks in name order) with objectives and model rewrites, or,
    with leader_election, the first whose picker runs with --ha-enable-leader-election."""
    for stack in available_stacks():
        for b in picker_bundles(stack, stack_manifests(stack)):
            if (b.leader_election if leader_election else (b.objectives and b.rewrites)):
                return b
    raise LookupError("no committed stack renders such a pool")


def model_server_replica(bundle: PickerBundle) -> Replica:
    """How `igw up` would run one replica of the pool's model server (args, LoRA adapters)."""
    plan = build_plan(stack_manifests(bundle.stack))
    return plan.pools[bundle.pool_name].replicas[0]


@dataclass
class PoolEnv:
    cluster: LocalCluster
    admin: KubeClient
    namespace: str
    bundle: PickerBundle
    addresses: Addresses
    workdir: Path
    pod_ips: list[str]
    replica: Replica
    kubeconfig: Path
    pods: dict[str, SimulatedPod] = field(default_factory=dict)
    pickers: list[KubePicker] = field(default_factory=list)
    gateway: Gateway | None = None

    # -- objects
    def pool_name(self) -> str:
        return self.bundle.pool_name

    def patch_pool(self, spec_patch: dict[str, Any]) -> None:
        self.admin.patch("inference.networking.k8s.io/v1", "InferencePool", self.pool_name(), {"spec": spec_patch},
                         namespace=self.namespace)

    # -- processes
    def start_picker(self, name: str = "picker", kubeconfig: Path | None = None) -> KubePicker:
        address = self.addresses.take(*PICKER_PORTS)
        p = KubePicker(self.bundle, self.namespace, kubeconfig or self.kubeconfig, address, self.workdir, name=name)
        self.pickers.append(p)
        return p

    def start_gateway(self, picker: KubePicker) -> Gateway:
        self.gateway = Gateway(self.addresses.take(GATEWAY_PORT), picker, [f"{ip}:{SIM_PORT}" for ip in self.pod_ips],
                               self.workdir)
        return self.gateway

    def add_pod(self, name: str, *, ready: bool = True, labels: dict[str, str] | None = None) -> SimulatedPod:
        ip = self.pod_ips[len(self.pods)]
        pod = SimulatedPod(self.admin, self.bundle, self.replica, self.namespace, name, ip, extra_labels=labels)
        self.pods[name] = pod
        pod.set_ready(ready)
        return pod

    def close(self) -> None:
        if self.gateway is not None:
            self.gateway.stop()
        for p in self.pickers:
            p.stop()
        for pod in self.pods.values():
            pod.stop()


def make_pool_env(cluster: LocalCluster, namespace: str, addresses: Addresses, workdir: Path,
                  bundle: PickerBundle, *, pods: int = 3) -> PoolEnv:
    admin = cluster.admin()
    pool = copy.deepcopy(bundle.pool)
    pool["spec"]["targetPorts"] = [{"number": SIM_PORT}]
    for obj in relocate([*bundle.rbac_objects(), pool, *bundle.objectives, *bundle.rewrites], namespace):
        admin.apply(obj, field_manager=FIELD_MANAGER)
    sa = bundle.service_account["metadata"]["name"]
    token_file = workdir / "token"
    token_file.write_text(cluster.service_account_token(namespace, sa))
    kubeconfig = cluster.kubeconfig(f"{namespace}-{sa}", token_file=token_file)
    return PoolEnv(cluster, admin, namespace, bundle, addresses, workdir,
                   [addresses.take(SIM_PORT) for _ in range(pods)], model_server_replica(bundle), kubeconfig)
