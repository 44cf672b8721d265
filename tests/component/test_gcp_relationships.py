"""Relationships between the GCP resources of every stack: the pieces reference each other the
way GKE Inference Gateway needs, and every child hangs under its component."""

from __future__ import annotations

import json

from components.config import config_values_from_stack_file
from components.stack_config import parse_stack_config
from components.config.routing import GATEWAY_CLASSES
from igw.engine import MOCK_PROJECT_NUMBER
from igw.stackfile import read_stack

SUBNET = "gcp:compute/subnetwork:Subnetwork"
CLUSTER = "gcp:container/cluster:Cluster"
POOL = "gcp:container/nodePool:NodePool"
INFRA_TYPES = {
    "gcp:projects/service:Service",
    "gcp:compute/network:Network",
    SUBNET,
    "gcp:compute/router:Router",
    "gcp:compute/routerNat:RouterNat",
    CLUSTER,
    POOL,
    "gcp:serviceaccount/account:Account",
    "gcp:artifactregistry/repository:Repository",
    "docker-build:index:Image",
    "gcp:modelarmor/template:Template",
    "gcp:modelarmor/floorsetting:Floorsetting",
}
"""Types only the GCP infrastructure components create."""


def config_of(stack: str):
    ours, _ = config_values_from_stack_file({"config": read_stack(stack)})
    return parse_stack_config(ours)


def test_cluster_uses_the_node_subnet_and_its_secondary_range_names(created_cluster_stack):
    cluster = created_cluster_stack.one(CLUSTER)
    (subnet,) = [s for s in created_cluster_stack.of_type(SUBNET) if "secondaryIpRanges" in s.inputs]
    vpc = created_cluster_stack.one("gcp:compute/network:Network")
    ranges = {r["rangeName"] for r in subnet.inputs["secondaryIpRanges"]}
    policy = cluster.inputs["ipAllocationPolicy"]
    assert {policy["clusterSecondaryRangeName"], policy["servicesSecondaryRangeName"]} == ranges, cluster.urn
    assert cluster.inputs["subnetwork"].endswith(f"/regions/{subnet.inputs['region']}/subnetworks/{subnet.inputs['name']}"), cluster.urn
    assert cluster.inputs["network"].endswith(f"/global/networks/{vpc.inputs['name']}"), cluster.urn
    assert subnet.inputs["network"] == cluster.inputs["network"], subnet.urn


def test_every_regional_gateway_region_has_a_proxy_only_subnet(created_cluster_stack):
    cfg = config_of(created_cluster_stack.stack)
    proxy_regions = {s.inputs["region"] for s in created_cluster_stack.of_type(SUBNET) if s.inputs.get("purpose") == "REGIONAL_MANAGED_PROXY"}
    proxy_regions |= {p.region for p in cfg.proxy_only_subnets if p.existing}
    assert cfg.gateways, f"{created_cluster_stack.stack} has gateways to check"
    for gw in cfg.gateways:
        assert gw.class_ in GATEWAY_CLASSES  # both classes are regional Envoy load balancers
        assert cfg.region in proxy_regions, f"gateway {gw.name}: no proxy-only subnet in {cfg.region}"
    for obj in created_cluster_stack.kubernetes_objects():
        if obj.get("kind") == "Gateway" and obj["apiVersion"].startswith("gateway.networking.k8s.io/"):
            assert obj["spec"]["gatewayClassName"] in GATEWAY_CLASSES, obj["metadata"]
            assert cfg.region in proxy_regions, obj["metadata"]


def test_node_pools_reference_the_cluster(created_cluster_stack):
    cluster = created_cluster_stack.one(CLUSTER)
    cluster_id = f"projects/{cluster.inputs['project']}/locations/{cluster.inputs['location']}/clusters/{cluster.inputs['name']}"
    pools = created_cluster_stack.of_type(POOL)
    assert len(pools) == 1 + len(config_of(created_cluster_stack.stack).node_pools)
    for pool in pools:
        assert pool.inputs["cluster"] == cluster_id, pool.urn
        assert pool.inputs["location"] == cluster.inputs["location"], pool.urn
        assert all(z.startswith(cluster.inputs["location"]) for z in pool.inputs["nodeLocations"]), pool.urn


def test_image_is_pushed_into_the_created_repository(any_stack):
    repos = any_stack.of_type("gcp:artifactregistry/repository:Repository")
    images = any_stack.of_type("docker-build:index:Image")
    if config_of(any_stack.stack).picker_image.image:
        assert repos == [] and images == []
        return
    (repo,), (image,) = repos, images
    uri = f"{repo.inputs['location']}-docker.pkg.dev/{repo.inputs['project']}/{repo.inputs['repositoryId']}"
    assert image.inputs["tags"][0].startswith(uri + "/endpoint-picker:"), image.urn
    assert image.inputs["registries"][0]["address"] == f"{repo.inputs['location']}-docker.pkg.dev", image.urn
    assert any_stack.outputs["pickerImage"].startswith(uri + "/endpoint-picker@sha256:")


def test_model_armor_iam_uses_the_project_number(any_stack):
    members = {m.inputs["member"] for m in any_stack.of_type("gcp:projects/iAMMember:IAMMember") if "gcp-sa-dep" in m.inputs["member"]}
    if not any_stack.of_type("gcp:modelarmor/template:Template"):
        assert members == set()
        return
    assert members == {f"serviceAccount:service-{MOCK_PROJECT_NUMBER}@gcp-sa-dep.iam.gserviceaccount.com"}


def test_model_armor_template_names_reach_the_gateway_extension(any_stack):
    """Where the gateways render a Model Armor traffic extension, it names our templates in full."""
    cfg = config_of(any_stack.stack)
    names = {
        f"projects/{cfg.project}/locations/{cfg.region}/templates/{t.inputs['templateId']}"
        for t in any_stack.of_type("gcp:modelarmor/template:Template")
    }
    for obj in any_stack.kubernetes_objects():
        if obj.get("kind") == "GCPTrafficExtension":
            text = json.dumps(obj)
            assert any(n in text for n in names), obj["metadata"]


def test_every_gcp_resource_is_a_child_of_a_gcp_component(created_cluster_stack):
    components = {r.urn: r for r in created_cluster_stack.resources if r.type.startswith("inference-gateway:gcp:")}
    assert {c.type.rsplit(":", 1)[1] for c in components.values()} >= {"Apis", "Network", "GkeCluster", "GpuNodePool", "PickerImage", "NodeServiceAccount"}
    for c in components.values():
        assert created_cluster_stack.by_urn(c.parent).type == "inference-gateway:platform:InferencePlatform", c.urn
    for r in created_cluster_stack.resources:
        if r.type in INFRA_TYPES:
            assert r.parent in components, r.urn
