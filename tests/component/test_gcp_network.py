"""Network under the mock engine: VPC, node subnet ranges, proxy-only subnets, NAT, adoption."""

from __future__ import annotations

import pytest

from tests.conftest import render_with

NETWORK = "gcp:compute/network:Network"
SUBNET = "gcp:compute/subnetwork:Subnetwork"
ROUTER = "gcp:compute/router:Router"
NAT = "gcp:compute/routerNat:RouterNat"

PRIVATE_NODES = {"dev": False, "prod": True, "local": False, "local-vllm": False, "runtimes": False, "external": False, "scale-to-zero": False}


def node_subnet(synth):
    found = [s for s in synth.of_type(SUBNET) if s.inputs.get("purpose", "PRIVATE") == "PRIVATE"]
    assert len(found) == 1, [s.urn for s in found]
    return found[0]


def test_custom_mode_regional_vpc(created_cluster_stack):
    vpc = created_cluster_stack.one(NETWORK)
    assert vpc.inputs["autoCreateSubnetworks"] is False, vpc.urn
    assert vpc.inputs["routingMode"] == "REGIONAL", vpc.urn
    assert "inference-gateway:gcp:Network" in vpc.parent, vpc.urn


def test_node_subnet_has_named_pod_and_service_ranges(created_cluster_stack):
    subnet = node_subnet(created_cluster_stack)
    assert subnet.inputs["privateIpGoogleAccess"] is True, subnet.urn
    assert subnet.inputs["region"] == "us-central1", subnet.urn
    assert subnet.inputs["ipCidrRange"] == "10.0.0.0/20", subnet.urn
    assert subnet.inputs["secondaryIpRanges"] == [
        {"rangeName": "pods", "ipCidrRange": "10.4.0.0/14"},
        {"rangeName": "services", "ipCidrRange": "10.8.0.0/20"},
    ], subnet.urn
    assert subnet.inputs["network"].endswith("/global/networks/" + created_cluster_stack.one(NETWORK).inputs["name"]), subnet.urn


def test_proxy_only_subnet_per_region(created_cluster_stack):
    proxies = [s for s in created_cluster_stack.of_type(SUBNET) if s.inputs.get("purpose") == "REGIONAL_MANAGED_PROXY"]
    assert [p.inputs["region"] for p in proxies] == ["us-central1"], created_cluster_stack.stack
    for p in proxies:
        assert p.inputs["role"] == "ACTIVE", p.urn
        assert p.inputs["ipCidrRange"] == "10.129.0.0/23", p.urn
        assert p.inputs["network"].endswith("/networks/" + created_cluster_stack.one(NETWORK).inputs["name"]), p.urn


def test_nat_only_for_private_nodes(created_cluster_stack):
    routers, nats = created_cluster_stack.of_type(ROUTER), created_cluster_stack.of_type(NAT)
    if not PRIVATE_NODES[created_cluster_stack.stack]:
        assert routers == [] and nats == [], created_cluster_stack.stack
        return
    (router,), (nat,) = routers, nats
    assert router.inputs["region"] == "us-central1", router.urn
    assert nat.inputs["router"] == router.inputs["name"], nat.urn
    assert nat.inputs["sourceSubnetworkIpRangesToNat"] == "LIST_OF_SUBNETWORKS", nat.urn
    assert nat.inputs["subnetworks"] == [
        {"name": f"https://www.googleapis.com/compute/v1/projects/igw-prod-project/regions/us-central1/subnetworks/{node_subnet(created_cluster_stack).inputs['name']}", "sourceIpRangesToNats": ["ALL_IP_RANGES"]}
    ], nat.urn


@pytest.fixture(scope="module")
def adopted():
    return render_with(
        "prod",
        network={
            "existing_network": "shared-vpc",
            "existing_subnet": "shared-gke-nodes",
            "nat": False,
            "proxy_only_subnets": [
                {"region": "us-central1", "existing": "shared-proxy-only"},
                {"region": "us-east4", "cidr": "10.130.0.0/23"},
            ],
        },
    )


def test_adopted_network_and_subnet_are_looked_up_not_created(adopted):
    assert adopted.of_type(NETWORK) == []
    created = adopted.of_type(SUBNET)
    assert [(s.inputs["region"], s.inputs["purpose"]) for s in created] == [("us-east4", "REGIONAL_MANAGED_PROXY")]
    assert created[0].inputs["network"].endswith("/global/networks/shared-vpc"), created[0].urn
    cluster = adopted.one("gcp:container/cluster:Cluster")
    assert cluster.inputs["network"].endswith("/global/networks/shared-vpc"), cluster.urn
    assert cluster.inputs["subnetwork"].endswith("/regions/us-central1/subnetworks/shared-gke-nodes"), cluster.urn
    assert adopted.of_type(NAT) == [] and adopted.of_type(ROUTER) == []
    assert adopted.outputs["networkName"] == "shared-vpc"


def test_existing_network_gets_our_subnet():
    synth = render_with("dev", network={"existing_network": "shared-vpc"})
    assert synth.of_type(NETWORK) == []
    subnet = node_subnet(synth)
    assert subnet.inputs["network"].endswith("/global/networks/shared-vpc"), subnet.urn
    assert subnet.inputs["secondaryIpRanges"][0]["rangeName"] == "pods", subnet.urn


def test_adopted_subnet_without_the_configured_range_names_fails_clearly():
    with pytest.raises(Exception, match=r"network\.existing_subnet: 'shared-gke-nodes' has no secondary range named 'gke-pods' \(it has: pods, services\)"):
        render_with("dev", network={"existing_network": "shared-vpc", "existing_subnet": "shared-gke-nodes", "pods_range_name": "gke-pods"})
