"""Bring your own cluster (cluster.existing): what validates, every rejection with its exact
message, and the CRD decision for clusters that have some of them already."""

from __future__ import annotations

from typing import Any

import pytest

from components.builders.crds import crds_to_install
from components.config import ConfigError
from components.stack_config import parse_stack_config

SERVER = {"name": "vllm", "model": "meta-llama/Llama-3.1-8B-Instruct", "hf_token": False}
POOL = {"name": "vllm", "model_server": "vllm"}
GATEWAY = {"name": "gw", "routes": [{"name": "default", "pool": "vllm"}]}
OFF = {"pod_monitoring": False, "dashboard": False, "alerts": False}
IMAGE = {"image": "registry.example.com/ml/endpoint-picker:0.1.0"}

GKE: dict[str, Any] = {
    "project": "igw-test-project",
    "cluster": {"name": "team-gke", "existing": {"kubeconfig": "~/.kube/config"}},
    "node_pools": [{"name": "gpu", "machine_type": "a3-highgpu-2g"}],
    "model_servers": [{**SERVER, "node_pool": "gpu"}],
    "pools": [POOL],
    "gateways": [GATEWAY],
}
OTHER: dict[str, Any] = {
    "project": "igw-test-project",
    "cluster": {"existing": {"gke": False}},
    "picker_image": IMAGE,
    "observability": OFF,
    "model_servers": [SERVER],
    "pools": [POOL],
}


def problems(**values: Any) -> list[str]:
    with pytest.raises(ConfigError) as err:
        parse_stack_config(values)
    return err.value.problems


def test_gke_cluster_describes_its_gpu_pools_and_keeps_the_gke_layer():
    cfg = parse_stack_config(GKE)
    assert cfg.cluster.existing is not None and cfg.cluster.existing.kubeconfig == "~/.kube/config"
    assert cfg.cluster.gke and cfg.cluster_name == "team-gke"
    assert cfg.node_pool_for(cfg.model_servers[0]).machine.accelerator == "nvidia-h100-80gb"


def test_a_created_cluster_is_gke():
    assert parse_stack_config({"project": "igw-test-project"}).cluster.gke


def test_non_gke_cluster_needs_no_node_pool_and_no_gke_objects():
    cfg = parse_stack_config(OTHER)
    assert not cfg.cluster.gke
    assert cfg.node_pool_for(cfg.model_servers[0]) is None


def test_the_existing_proxy_only_subnet_is_described_for_the_network_policies():
    cfg = parse_stack_config({**GKE, "network": {"proxy_only_subnets": [{"region": "us-central1", "cidr": "10.200.0.0/23"}]}})
    assert [p.cidr for p in cfg.proxy_only_subnets] == ["10.200.0.0/23"]


def test_zones_are_not_checked_for_h100_capacity_on_an_existing_cluster():
    # europe-west9-a has no known H100 capacity; the existing pool is wherever it is.
    parse_stack_config({**GKE, "region": "europe-west9", "zones": ["europe-west9-a"]})
    assert any("has no known H100 capacity" in p for p in problems(**{**GKE, "cluster": {"name": "x"}, "region": "europe-west9", "zones": ["europe-west9-a"]}))


REJECTIONS = [
    pytest.param(
        {**GKE, "cluster": {"name": "team-gke", "existing": {}, "release_channel": "STABLE", "private_nodes": True}},
        [
            "cluster.private_nodes: configures a cluster the stack creates; with cluster.existing the stack does not create or change the cluster (remove it)",
            "cluster.release_channel: configures a cluster the stack creates; with cluster.existing the stack does not create or change the cluster (remove it)",
        ],
        id="cluster-creation-settings",
    ),
    pytest.param(
        {**GKE, "network": {"existing_network": "vpc", "node_subnet_cidr": "10.0.0.0/20"}},
        [
            "network.node_subnet_cidr: the stack creates no network for an existing cluster (remove it); only "
            "network.existing_network, network.existing_subnet and network.proxy_only_subnets apply, describing "
            "the cluster's VPC, node subnet and proxy-only subnets"
        ],
        id="network-creation-settings",
    ),
    pytest.param(
        {**GKE, "apis": {"enable": True}},
        ["apis: the stack enables no Google APIs for an existing cluster (remove it); the cluster's project manages them"],
        id="apis",
    ),
    pytest.param(
        {**GKE, "node_pools": [{"name": "gpu", "machine_type": "a3-highgpu-2g", "provisioning": "spot"}]},
        [
            "node_pools[0].provisioning: configures a node pool the stack creates; with cluster.existing the stack does "
            "not create or change the cluster, so node_pools only describes its GPU pools by name and machine_type"
        ],
        id="node-pool-creation-settings",
    ),
    pytest.param(
        {**GKE, "cluster": {"existing": {}}},
        [
            "cluster.name: name the existing GKE cluster; the dashboard and alerts select its metrics by cluster name "
            "(or set observability.dashboard and observability.alerts to false)"
        ],
        id="dashboard-needs-the-cluster-name",
    ),
    pytest.param(
        {**GKE, "model_servers": [{**SERVER, "node_pool": "gpu", "tensor_parallel_size": 4}]},
        [
            "model_servers[0].tensor_parallel_size: 4 needs 4 GPUs but a3-highgpu-2g has 2; use at most 2 or a larger machine type"
        ],
        id="tensor-parallel-checked-against-the-described-pool",
    ),
    pytest.param(
        {**GKE, "cluster": {"name": "team-gke", "existing": {"gke": "maybe"}}},
        ["cluster.existing.gke: 'maybe' is invalid (input should be a valid boolean, unable to interpret input)"],
        id="gke-not-a-boolean",
    ),
    pytest.param(
        {**GKE, "cluster": {"name": "team-gke", "existing": {"installed_crds": ["Gateway"]}}},
        ["cluster.existing.installed_crds[0]: 'Gateway' is not supported; use InferencePool, InferenceObjective or InferenceModelRewrite"],
        id="installed-crd-unknown-kind",
    ),
    pytest.param(
        {**GKE, "cluster": {"name": "team-gke", "existing": {"kubeconfg": "~/.kube/config"}}},
        ["cluster.existing.kubeconfg: unknown field; allowed: kubeconfig, context, gke, installed_crds"],
        id="existing-typo",
    ),
]


@pytest.mark.parametrize("values, expected", REJECTIONS)
def test_rejections(values, expected):
    assert problems(**values) == expected


def test_off_gke_every_gke_only_object_is_named():
    values = {
        **OTHER,
        "picker_image": {},
        "observability": {},
        "node_pools": [{"name": "gpu", "machine_type": "a3-highgpu-1g"}],
        "model_servers": [{**SERVER, "gcs_bucket": "weights"}],
        "gateways": [GATEWAY],
        "model_armor": {"templates": [{"id": "t"}], "guards": [{"model": "default", "prompt_template": "t", "response_template": "t"}]},
    }
    why = "needs GKE (cluster.existing.gke is false)"
    assert problems(**values) == [
        f"gateways[0]: 'gw' is a GKE Gateway (class gke-l7-regional-external-managed), which {why}; remove it and route to "
        "the InferencePools with your cluster's own Gateway API implementation",
        f"model_armor: the Model Armor traffic extension (GCPTrafficExtension on a GKE gateway) {why}; remove it",
        f"observability.pod_monitoring: PodMonitoring (Google Cloud Managed Prometheus) {why}; set it to false",
        f"observability.dashboard: the Cloud Monitoring dashboard (Managed Prometheus metrics) {why}; set it to false",
        f"observability.alerts: the alert policies (Managed Prometheus metrics) {why}; set it to false",
        f"node_pools: selects GKE node pools by the cloud.google.com/gke-accelerator label, which {why}; remove it: model "
        "servers request nvidia.com/gpu and the scheduler places them on GPU nodes",
        f"model_servers[0].gcs_bucket: reading a bucket through Workload Identity {why}; remove it",
        "picker_image.image: is required on a non-GKE cluster; push the picker image (picker/Dockerfile) to a registry "
        "the cluster can pull from and give its reference",
    ]


@pytest.mark.parametrize(
    "version, gke, installed, expected",
    [
        pytest.param("1.33.5-gke.1080000", True, [], ["InferencePool", "InferenceObjective", "InferenceModelRewrite"], id="gke-1.33"),
        pytest.param("1.34.0-gke.1626000", True, [], ["InferenceObjective", "InferenceModelRewrite"], id="gke-installs-pool"),
        pytest.param("1.35.0", False, [], ["InferencePool", "InferenceObjective", "InferenceModelRewrite"], id="not-gke-any-version"),
        pytest.param("1.32.3", False, ["InferencePool"], ["InferenceObjective", "InferenceModelRewrite"], id="pool-already-installed"),
        pytest.param("1.32.3", True, ["InferencePool", "InferenceObjective", "InferenceModelRewrite"], [], id="all-installed"),
    ],
)
def test_crds_the_stack_installs(version, gke, installed, expected):
    assert [c["spec"]["names"]["kind"] for c in crds_to_install(version, gke=gke, installed=installed)] == expected
