"""GkeCluster under the mock engine: the exact settings GKE Inference Gateway needs, per stack."""

from __future__ import annotations

import pytest

from tests.conftest import render_with

CLUSTER = "gcp:container/cluster:Cluster"
POOL = "gcp:container/nodePool:NodePool"

EXPECTED = {
    "dev": {"project": "igw-dev-project", "name": "igw-dev-gke", "version": "1.32.3", "channel": "REGULAR", "private": False, "protected": False},
    "prod": {"project": "igw-prod-project", "name": "igw-prod-gke", "version": "1.33.2-gke.1335000", "channel": "STABLE", "private": True, "protected": True},
    "local": {"project": "igw-local-dev", "name": "igw-local-gke", "version": "1.32.3", "channel": "REGULAR", "private": False, "protected": False},
    "local-vllm": {"project": "igw-local-dev", "name": "igw-local-vllm-gke", "version": "1.32.3", "channel": "REGULAR", "private": False, "protected": False},
    "runtimes": {"project": "igw-runtimes-dev", "name": "igw-rt-gke", "version": "1.32.3", "channel": "REGULAR", "private": False, "protected": False},
    "external": {"project": "igw-external-dev", "name": "igw-ext-gke", "version": "1.32.3", "channel": "REGULAR", "private": False, "protected": False},
    "scale-to-zero": {"project": "igw-local-dev", "name": "igw-s2z-gke", "version": "1.32.3", "channel": "REGULAR", "private": False, "protected": False},
}


def test_cluster_settings(created_cluster_stack):
    want = EXPECTED[created_cluster_stack.stack]
    c = created_cluster_stack.one(CLUSTER)
    i = c.inputs
    assert i["name"] == want["name"], c.urn
    assert i["location"] == "us-central1", c.urn
    assert i["networkingMode"] == "VPC_NATIVE", c.urn
    assert i["ipAllocationPolicy"] == {"clusterSecondaryRangeName": "pods", "servicesSecondaryRangeName": "services"}, c.urn
    assert i["gatewayApiConfig"] == {"channel": "CHANNEL_STANDARD"}, c.urn
    assert i["addonsConfig"] == {"httpLoadBalancing": {"disabled": False}}, c.urn
    assert i["minMasterVersion"] == want["version"], c.urn
    assert i["releaseChannel"] == {"channel": want["channel"]}, c.urn
    assert i["workloadIdentityConfig"] == {"workloadPool": f"{want['project']}.svc.id.goog"}, c.urn
    assert i["monitoringConfig"] == {"enableComponents": ["SYSTEM_COMPONENTS", "DCGM"], "managedPrometheus": {"enabled": True}}, c.urn
    assert i["removeDefaultNodePool"] is True and i["initialNodeCount"] == 1, c.urn
    assert i["deletionProtection"] is want["protected"], c.urn
    prefix = want["name"].removesuffix("-gke")
    assert i["nodeConfig"]["serviceAccount"] == f"{prefix}-nodes@{want['project']}.iam.gserviceaccount.com", c.urn
    assert "inference-gateway:gcp:GkeCluster" in c.parent, c.urn


def test_private_cluster_config_only_with_private_nodes(created_cluster_stack):
    c = created_cluster_stack.one(CLUSTER)
    if not EXPECTED[created_cluster_stack.stack]["private"]:
        assert "privateClusterConfig" not in c.inputs, c.urn
        return
    assert c.inputs["privateClusterConfig"] == {
        "enablePrivateNodes": True,
        "enablePrivateEndpoint": False,
        "masterIpv4CidrBlock": "172.16.0.0/28",
        "masterGlobalAccessConfig": {"enabled": True},
    }, c.urn


def test_system_pool(created_cluster_stack):
    c = created_cluster_stack.one(CLUSTER)
    (pool,) = [p for p in created_cluster_stack.of_type(POOL) if p.inputs["name"] == "system"]
    node = pool.inputs["nodeConfig"]
    assert pool.inputs["cluster"] == f"projects/{c.inputs['project']}/locations/us-central1/clusters/{c.inputs['name']}", pool.urn
    assert node["labels"] == {"inference-gateway.dev/pool": "system"}, pool.urn
    assert node["workloadMetadataConfig"] == {"mode": "GKE_METADATA"}, pool.urn
    assert node["serviceAccount"] == c.inputs["nodeConfig"]["serviceAccount"], pool.urn
    assert "guestAccelerators" not in node and "taints" not in node, pool.urn
    assert pool.inputs["autoscaling"]["minNodeCount"] >= 1, pool.urn


def test_node_service_account_is_least_privilege(created_cluster_stack):
    (sa,) = [a for a in created_cluster_stack.of_type("gcp:serviceaccount/account:Account") if a.inputs["accountId"].endswith("-nodes")]
    email = f"{sa.inputs['accountId']}@{sa.inputs['project']}.iam.gserviceaccount.com"
    roles = {
        m.inputs["role"]
        for m in created_cluster_stack.of_type("gcp:projects/iAMMember:IAMMember")
        if m.inputs["member"] == f"serviceAccount:{email}"
    }
    assert roles == {
        "roles/logging.logWriter",
        "roles/monitoring.metricWriter",
        "roles/monitoring.viewer",
        "roles/stackdriver.resourceMetadata.writer",
        "roles/artifactregistry.reader",
    }, sa.urn


def test_kubernetes_provider_gets_a_secret_kubeconfig(created_cluster_stack):
    provider = created_cluster_stack.one("pulumi:providers:kubernetes")
    assert provider.inputs["kubeconfig"] == "[secret]", provider.urn
    deps = {created_cluster_stack.by_urn(d).type for d in provider.dependencies}
    assert {CLUSTER, POOL} <= deps, provider.urn


def test_exports(created_cluster_stack):
    out = created_cluster_stack.outputs
    assert out["clusterEndpoint"] == "203.0.113.10"
    assert out["clusterLocation"] == "us-central1"
    assert out["networkName"] == created_cluster_stack.one("gcp:compute/network:Network").inputs["name"]


@pytest.fixture(scope="module")
def locked_down():
    return render_with(
        "dev",
        environment="production",
        cluster={
            "regional": False,
            "private_nodes": True,
            "private_endpoint": True,
            "master_authorized_networks": ["192.0.2.0/24"],
        },
    )


def test_zonal_private_endpoint_cluster(locked_down):
    c = locked_down.one(CLUSTER)
    assert c.inputs["location"] == "us-central1-a", c.urn
    assert c.inputs["nodeLocations"] == ["us-central1-c"], c.urn
    assert c.inputs["privateClusterConfig"]["enablePrivateEndpoint"] is True, c.urn
    assert c.inputs["masterAuthorizedNetworksConfig"] == {"cidrBlocks": [{"cidrBlock": "192.0.2.0/24", "displayName": "authorized-0"}]}, c.urn
    assert c.inputs["deletionProtection"] is True, c.urn
    for pool in locked_down.of_type(POOL):
        assert pool.inputs["location"] == "us-central1-a", pool.urn
    assert locked_down.of_type("gcp:compute/routerNat:RouterNat"), "private nodes get NAT"
