"""Cluster and H100 node pool policies on rendered clusters and pools."""

from __future__ import annotations

import pytest

from tests.conftest import render_with, rendered
from tests.policy.conftest import mutate, validate

CLUSTER = "gcp:container/cluster:Cluster"
NODE_POOL = "gcp:container/nodePool:NodePool"
CLUSTER_POLICIES = ["gke-min-version", "gke-vpc-native", "gke-gateway-api-enabled", "gke-http-load-balancing-enabled", "gke-deletion-protection"]


def cluster(stack: str = "prod"):
    return rendered(stack).one(CLUSTER)


def h100_pools(stack: str):
    pools = [
        r for r in rendered(stack).of_type(NODE_POOL)
        if any(a.get("type", "").startswith("nvidia-h100") for a in r.inputs.get("nodeConfig", {}).get("guestAccelerators", []))
    ]
    assert pools, f"{stack} renders no H100 node pool"
    return pools


@pytest.mark.parametrize("stack", ["dev", "prod", "local"])
@pytest.mark.parametrize("policy", CLUSTER_POLICIES)
def test_rendered_clusters_pass(stack, policy):
    env = "production" if stack == "prod" else "development"
    assert validate(policy, cluster(stack), environment=env) == []


def test_old_version_is_rejected_with_the_fix():
    old = mutate(cluster(), "minMasterVersion", "1.31.6-gke.1000")
    assert validate("gke-min-version", old) == [
        "Cluster 'igw-prod-gke': minMasterVersion '1.31.6-gke.1000' is older than 1.32.3, the minimum for GKE "
        "Inference Gateway. Fix: set cluster.min_master_version to 1.32.3 or later."
    ]


def test_unset_version_is_rejected_and_the_floor_is_configurable():
    assert validate("gke-min-version", mutate(cluster(), "minMasterVersion", None)) == [
        "Cluster 'igw-prod-gke': minMasterVersion is unset, so GKE may create a control plane older than 1.32.3, "
        "which GKE Inference Gateway needs. Fix: set cluster.min_master_version to 1.32.3 or later."
    ]
    # prod pins 1.33.2-gke.1335000: a 1.34 floor flags it, a 1.33 floor does not.
    assert len(validate("gke-min-version", cluster(), minVersion="1.34.0")) == 1
    assert validate("gke-min-version", cluster(), minVersion="1.33.0") == []
    assert validate("gke-min-version", mutate(cluster(), "minMasterVersion", "1.32.3")) == []


def test_routes_based_cluster_is_rejected():
    routes = mutate(cluster(), "networkingMode", "ROUTES")
    assert validate("gke-vpc-native", routes) == [
        "Cluster 'igw-prod-gke': networkingMode is 'ROUTES'; GKE Inference Gateway and container-native load "
        "balancing need a VPC-native cluster. Fix: set networkingMode VPC_NATIVE (cluster.networking_mode)."
    ]
    no_alias_ips = mutate(cluster(), "ipAllocationPolicy", None)
    assert validate("gke-vpc-native", no_alias_ips) == [
        "Cluster 'igw-prod-gke': ipAllocationPolicy is unset, so the cluster is not VPC-native (alias IPs). Fix: "
        "set ipAllocationPolicy with the node subnet's pod and service secondary range names."
    ]


def test_gateway_api_off_is_rejected():
    off = mutate(cluster(), "gatewayApiConfig.channel", "CHANNEL_DISABLED")
    assert validate("gke-gateway-api-enabled", off) == [
        "Cluster 'igw-prod-gke': gatewayApiConfig.channel is 'CHANNEL_DISABLED', so the GKE Gateway controller is "
        "off and no Gateway will be programmed. Fix: set gatewayApiConfig.channel to CHANNEL_STANDARD."
    ]
    assert len(validate("gke-gateway-api-enabled", mutate(cluster(), "gatewayApiConfig", None))) == 1


def test_http_load_balancing_off_is_rejected():
    off = mutate(cluster(), "addonsConfig.httpLoadBalancing.disabled", True)
    assert validate("gke-http-load-balancing-enabled", off) == [
        "Cluster 'igw-prod-gke': addonsConfig.httpLoadBalancing.disabled is true; the Gateway controller needs the "
        "HttpLoadBalancing add-on. Fix: set addonsConfig.httpLoadBalancing.disabled to false (or drop it: the "
        "add-on is on by default)."
    ]
    assert validate("gke-http-load-balancing-enabled", mutate(cluster(), "addonsConfig", None)) == []


PROTECTION_MESSAGE = (
    "Cluster 'igw-prod-gke': deletionProtection is false in a production stack, so a `pulumi destroy` or a "
    "replacement deletes the cluster and every model server on it. Fix: remove cluster.deletion_protection: "
    "false from the stack config (production defaults to true)."
)


def test_prod_without_deletion_protection_is_rejected():
    unsafe = render_with("prod", cluster={
        "min_master_version": "1.33.2-gke.1335000", "release_channel": "STABLE", "private_nodes": True,
        "master_cidr": "172.16.0.0/28", "master_global_access": True, "deletion_protection": False,
    })
    assert validate("gke-deletion-protection", unsafe.one(CLUSTER)) == [PROTECTION_MESSAGE]


def test_deletion_protection_only_matters_in_production():
    dev = cluster("dev")
    assert dev.inputs.get("deletionProtection") is False  # dev stacks can be torn down
    assert validate("gke-deletion-protection", dev, environment="development") == []
    assert validate("gke-deletion-protection", dev, environment="development", environments=["*"]) != []
    assert validate("gke-deletion-protection", mutate(cluster(), "deletionProtection", None)) == []  # provider default: on


@pytest.mark.parametrize("stack", ["dev", "prod", "local"])
def test_rendered_h100_pools_pass(stack):
    for pool in h100_pools(stack):
        assert validate("gpu-pool-drivers-installed", pool) == [], pool.name
        assert validate("gpu-pool-tainted", pool) == [], pool.name


def test_pool_without_driver_is_rejected():
    pool = h100_pools("prod")[0]
    no_driver = mutate(pool, "nodeConfig.guestAccelerators.0.gpuDriverInstallationConfig", None)
    assert validate("gpu-pool-drivers-installed", no_driver) == [
        f"NodePool {pool.name!r}: nvidia-h100-80gb accelerators have gpuDriverVersion unset, so nodes may come up "
        "without an NVIDIA driver and vLLM cannot see the GPUs. Fix: set "
        "nodeConfig.guestAccelerators[].gpuDriverInstallationConfig.gpuDriverVersion to DEFAULT or LATEST "
        "(node_pools[].gpu_driver_version)."
    ]
    disabled = mutate(pool, "nodeConfig.guestAccelerators.0.gpuDriverInstallationConfig.gpuDriverVersion", "INSTALLATION_DISABLED")
    assert "gpuDriverVersion 'INSTALLATION_DISABLED'" in validate("gpu-pool-drivers-installed", disabled)[0]


def test_pool_without_taint_is_rejected():
    pool = h100_pools("prod")[0]
    untainted = mutate(pool, "nodeConfig.taints", [])
    assert validate("gpu-pool-tainted", untainted) == [
        f"NodePool {pool.name!r}: the H100 pool has no nvidia.com/gpu NO_SCHEDULE taint, so non-GPU pods can land "
        "on (and hold) GPU nodes. Fix: add nodeConfig.taints [{key: nvidia.com/gpu, value: present, effect: "
        "NO_SCHEDULE}]."
    ]
    prefer = mutate(pool, "nodeConfig.taints.0.effect", "PREFER_NO_SCHEDULE")
    assert len(validate("gpu-pool-tainted", prefer)) == 1


def test_non_gpu_pools_are_out_of_scope():
    system = rendered("prod").one(NODE_POOL, "igw-prod-gke-system")
    assert validate("gpu-pool-tainted", system) == []
    assert validate("gpu-pool-drivers-installed", system) == []
