"""Stack config for the GCP side: every rejection, with its exact message (YAML path, bad value,
what is allowed), and the defaults the components rely on."""

from __future__ import annotations

from typing import Any

import pytest

from components.config import ConfigError
from components.stack_config import parse_stack_config

BASE: dict[str, Any] = {"project": "igw-test-project"}
H100_ZONES = "us-central1-a, us-central1-b, us-central1-c"
MACHINES = "a3-highgpu-1g, a3-highgpu-2g, a3-highgpu-4g, a3-highgpu-8g, a3-edgegpu-8g, a3-megagpu-8g"
GUARD = {"model": "default", "prompt_template": "t", "response_template": "t"}


def problems(**values: Any) -> list[str]:
    with pytest.raises(ConfigError) as err:
        parse_stack_config({**BASE, **values})
    return err.value.problems


def test_minimal_config_is_valid_with_gcp_defaults():
    cfg = parse_stack_config(BASE)
    assert cfg.apis.enable and cfg.apis.disable_on_destroy is False
    assert [(p.region, p.cidr) for p in cfg.proxy_only_subnets] == [("us-central1", "10.129.0.0/23")]
    assert cfg.cluster.min_master_version == "1.32.3"
    assert cfg.deletion_protection is False
    assert parse_stack_config({**BASE, "environment": "production"}).deletion_protection is True
    assert parse_stack_config({**BASE, "environment": "production", "cluster": {"deletion_protection": False}}).deletion_protection is False


REJECTIONS = [
    # -- network ------------------------------------------------------------------------------
    pytest.param(
        {"network": {"existing_subnet": "s"}},
        "network: existing_subnet 's' needs existing_network: name the VPC the subnet belongs to",
        id="existing-subnet-without-network",
    ),
    pytest.param(
        {"network": {"pods_range_name": "r", "services_range_name": "r"}},
        "network: pods_range_name and services_range_name are both 'r'; the pod and service secondary ranges need different names",
        id="same-secondary-range-names",
    ),
    pytest.param(
        {"network": {"pods_range_name": "Pods"}},
        "network.pods_range_name: 'Pods' is not a valid name; use lowercase letters, digits and '-', starting with a letter, at most 63 characters",
        id="range-name-not-rfc1035",
    ),
    pytest.param(
        {"network": {"node_subnet_cidr": "10.0.0.1/20"}},
        "network.node_subnet_cidr: '10.0.0.1/20' is not a CIDR range like 10.0.0.0/20",
        id="host-bits-set",
    ),
    pytest.param(
        {"network": {"proxy_only_subnets": [{"region": "us-central1", "cidr": "10.129.0.0/27"}]}},
        "network.proxy_only_subnets[0].cidr: '10.129.0.0/27' is too small; a proxy-only subnet needs at least /26 (64 addresses), /23 is usual",
        id="proxy-only-too-small",
    ),
    pytest.param(
        {"network": {"pods_cidr": "10.0.0.0/14"}},
        "network.pods_cidr: '10.0.0.0/14' overlaps network.node_subnet_cidr (10.0.0.0/20); use disjoint ranges",
        id="pods-overlap-nodes",
    ),
    pytest.param(
        {"network": {"services_cidr": "10.4.0.0/20"}},
        "network.services_cidr: '10.4.0.0/20' overlaps network.pods_cidr (10.4.0.0/14); use disjoint ranges",
        id="services-overlap-pods",
    ),
    pytest.param(
        {"network": {"proxy_only_subnets": [{"region": "us-central1", "cidr": "10.8.0.0/23"}]}},
        "network.proxy_only_subnets[0].cidr: '10.8.0.0/23' overlaps network.services_cidr (10.8.0.0/20); use disjoint ranges",
        id="proxy-only-overlap-services",
    ),
    pytest.param(
        {"cluster": {"private_nodes": True, "master_cidr": "10.0.0.0/28"}},
        "cluster.master_cidr: '10.0.0.0/28' overlaps network.node_subnet_cidr (10.0.0.0/20); use disjoint ranges",
        id="master-overlap-nodes",
    ),
    pytest.param(
        {"network": {"proxy_only_subnets": [{"region": "us-central1"}, {"region": "us-central1", "cidr": "10.130.0.0/23"}]}},
        "network.proxy_only_subnets[1].region: 'us-central1' already has a proxy-only subnet; a VPC has one ACTIVE proxy-only subnet per region",
        id="two-proxy-only-subnets-in-region",
    ),
    pytest.param(
        {"network": {"proxy_only_subnets": [{"region": "us-east4", "cidr": "10.130.0.0/23"}]}, "gateways": [{"name": "gw"}]},
        "network.proxy_only_subnets: gateway region 'us-central1' has no proxy-only subnet; regional gateways need one (add {region: us-central1, cidr: 10.129.0.0/23})",
        id="gateway-region-without-proxy-only-subnet",
    ),
    # -- region / zones -------------------------------------------------------------------------
    pytest.param(
        {"zones": ["us-east4-a"]},
        "zones[0]: 'us-east4-a' is not in region 'us-central1'; use zones like us-central1-a",
        id="zone-outside-region",
    ),
    pytest.param(
        {"zones": []},
        "zones: [] is empty; list the zones of region 'us-central1' for nodes, e.g. [us-central1-a, us-central1-c]",
        id="no-zones",
    ),
    pytest.param({"zones": ["us-central1-a", "us-central1-a"]}, "zones[1]: 'us-central1-a' is listed twice", id="zone-twice"),
    pytest.param(
        {"zones": ["us-central1-f"], "node_pools": [{"autoscaling": {"max_nodes": 1}}]},
        f"node_pools[0].node_locations: 'us-central1-f' has no known H100 capacity; use one of {H100_ZONES} or list your "
        "zones in cluster.h100_zones_override. Quota hint: H100 quota defaults to 0 (NVIDIA_H100_GPUS on-demand; "
        "spot and flex-start use PREEMPTIBLE_NVIDIA_H100_GPUS)",
        id="zone-without-h100",
    ),
    pytest.param(
        {"node_pools": [{"node_locations": ["us-east4-a"]}]},
        "node_pools[0].node_locations: 'us-east4-a' is not in region 'us-central1'",
        id="pool-zone-outside-region",
    ),
    # -- cluster ------------------------------------------------------------------------------
    pytest.param(
        {"cluster": {"networking_mode": "ROUTES"}},
        "cluster.networking_mode: 'ROUTES' is not supported; GKE Inference Gateway needs a VPC-native cluster (use VPC_NATIVE)",
        id="routes-based",
    ),
    pytest.param(
        {"cluster": {"min_master_version": "1.31.0"}},
        "cluster.min_master_version: '1.31.0' is too old; GKE Inference Gateway needs 1.32.3 or later",
        id="gke-too-old",
    ),
    pytest.param(
        {"cluster": {"min_master_version": "latest"}},
        "cluster.min_master_version: 'latest' is not a GKE version like 1.32.3 or 1.33.2-gke.1335000",
        id="gke-version-format",
    ),
    pytest.param(
        {"cluster": {"release_channel": "NIGHTLY"}},
        "cluster.release_channel: 'NIGHTLY' is not supported; use RAPID, REGULAR, STABLE, EXTENDED or UNSPECIFIED",
        id="release-channel",
    ),
    pytest.param({"cluster": {"private_endpoint": True}}, "cluster: private_endpoint needs private_nodes: true", id="private-endpoint-public-nodes"),
    pytest.param(
        {"cluster": {"master_global_access": True}},
        "cluster: master_global_access applies to private clusters only; set private_nodes: true or remove it",
        id="global-access-public-cluster",
    ),
    pytest.param(
        {"cluster": {"private_nodes": True, "master_cidr": "172.16.0.0/24"}},
        "cluster: master_cidr '172.16.0.0/24' must be a /28",
        id="master-cidr-not-28",
    ),
    pytest.param(
        {"cluster": {"master_authorized_networks": ["corp-vpn"]}},
        "cluster.master_authorized_networks[0]: 'corp-vpn' is not a CIDR range like 10.0.0.0/20",
        id="authorized-network-not-cidr",
    ),
    pytest.param(
        {"cluster": {"name": "c" * 41}},
        f"cluster.name: cluster name '{'c' * 41}' has 41 characters; GKE allows at most 40",
        id="cluster-name-too-long",
    ),
    pytest.param(
        {"name_prefix": "a-very-long-name-prefix-xyz"},
        "name_prefix: 'a-very-long-name-prefix-xyz' makes the node service account id 'a-very-long-name-prefix-xyz-nodes', "
        "which is not a valid service account id; use a name_prefix of 1-24 lowercase letters, digits or '-', starting with a letter",
        id="name-prefix-too-long-for-service-account",
    ),
    # -- GPU node pools -----------------------------------------------------------------------
    pytest.param(
        {"node_pools": [{"machine_type": "a3-ultragpu-8g"}]},
        f"node_pools[0].machine_type: a3-ultragpu-8g carries H200 GPUs (nvidia-h200-141gb), not H100; use one of {MACHINES}",
        id="h200-is-not-h100",
    ),
    pytest.param(
        {"node_pools": [{"machine_type": "n1-standard-8"}]},
        f"node_pools[0].machine_type: 'n1-standard-8' is not an H100 machine type; use one of {MACHINES}",
        id="not-a-gpu-machine",
    ),
    pytest.param(
        {"node_pools": [{"autoscaling": {"max_nodes": 1, "total_max_nodes": 2}}]},
        "node_pools[0].autoscaling: max_nodes=1, total_max_nodes=2: set per-zone min_nodes/max_nodes or total_min_nodes/total_max_nodes, not both",
        id="autoscaling-per-zone-and-total",
    ),
    pytest.param(
        {"node_pools": [{"autoscaling": {}}]},
        "node_pools[0].autoscaling: set max_nodes (per zone) or total_max_nodes (whole pool)",
        id="autoscaling-without-limits",
    ),
    pytest.param(
        {"node_pools": [{"autoscaling": {"total_min_nodes": 3, "total_max_nodes": 2}}]},
        "node_pools[0].autoscaling: minimum 3 is larger than maximum 2",
        id="autoscaling-min-above-max",
    ),
    pytest.param(
        {"node_pools": [{"autoscaling": {"max_nodes": 1, "location_policy": "RANDOM"}}]},
        "node_pools[0].autoscaling.location_policy: 'RANDOM' is not supported; use BALANCED or ANY",
        id="location-policy",
    ),
    pytest.param(
        {"node_pools": [{"provisioning": "reservation"}]},
        "node_pools[0]: provisioning 'reservation' needs reservation: <reservation name>",
        id="reservation-without-name",
    ),
    pytest.param(
        {"node_pools": [{"provisioning": "spot", "reservation": "r"}]},
        "node_pools[0]: reservation is set but provisioning is 'spot'; a specific reservation cannot be combined with spot "
        "or flex-start (use provisioning: reservation)",
        id="reservation-with-spot",
    ),
    pytest.param(
        {"node_pools": [{"provisioning": "queued"}]},
        "node_pools[0].provisioning: 'queued' is not supported; use on-demand, spot, flex-start or reservation",
        id="unknown-provisioning",
    ),
    pytest.param(
        {"node_pools": [{"provisioning": "flex-start", "max_run_duration": "7d"}]},
        "node_pools[0].max_run_duration: '7d' is not a duration in seconds like '604800s'",
        id="duration-format",
    ),
    pytest.param(
        {"node_pools": [{"provisioning": "flex-start", "max_run_duration": "700000s"}]},
        "node_pools[0].max_run_duration: '700000s' is out of range; flex-start VMs run between 600s and 604800s (7 days)",
        id="duration-over-7-days",
    ),
    pytest.param(
        {"node_pools": [{"gpu_driver_version": "INSTALLATION_DISABLED"}]},
        "node_pools[0].gpu_driver_version: 'INSTALLATION_DISABLED' is not supported; use DEFAULT or LATEST",
        id="driver-version",
    ),
    pytest.param(
        {"node_pools": [{"image_streaming": False, "secondary_boot_disk": "global/images/x"}]},
        "node_pools[0]: secondary_boot_disk needs image_streaming: true (GKE requires gcfs for it)",
        id="secondary-boot-disk-without-streaming",
    ),
    pytest.param(
        {"node_pools": [{"secondary_boot_disk": "my-image"}]},
        "node_pools[0]: secondary_boot_disk 'my-image' is not a disk image; use 'global/images/NAME' or 'projects/PROJECT/global/images/NAME'",
        id="secondary-boot-disk-format",
    ),
    pytest.param(
        {"node_pools": [{"local_ssd_count": 4}]},
        "node_pools[0]: local_ssd_count 4 does not match a3-highgpu-8g, which comes with 16 local SSDs; use 16 (all of them as ephemeral storage) or 0",
        id="local-ssd-count",
    ),
    pytest.param(
        {"node_pools": [{}, {}]},
        "node_pools[1].name: 'gpu-h100x8-a3h8' is used by two node pools; give one an explicit name",
        id="duplicate-pool-names",
    ),
    pytest.param(
        {"node_pools": [{"name": "system"}]},
        "node_pools[0].name: 'system' is the CPU system pool's name; use another name",
        id="pool-named-system",
    ),
    pytest.param(
        {"node_pools": [{"name": "a" * 41}]},
        f"node_pools[0].name: '{'a' * 41}' has 41 characters; GKE allows at most 40",
        id="pool-name-too-long",
    ),
    pytest.param(
        {"zones": ["us-central1-a"], "cluster": {"regional": False}, "node_pools": [{"node_locations": ["us-central1-c"]}]},
        "node_pools[0].node_locations: 'us-central1-c' is not a zone of the zonal cluster (us-central1-a); "
        "add it to zones or set cluster.regional: true",
        id="zonal-cluster-pool-outside-its-zones",
    ),
    # -- picker image ---------------------------------------------------------------------------
    pytest.param(
        {"picker_image": {"image": "not a ref"}},
        "picker_image.image: 'not a ref' is not an image reference; use REGISTRY/PATH/NAME:TAG or REGISTRY/PATH/NAME@sha256:DIGEST",
        id="picker-image-ref",
    ),
    pytest.param(
        {"picker_image": {"repository_id": "My_Repo"}},
        "picker_image.repository_id: 'My_Repo' is not a valid name; use lowercase letters, digits and '-', starting with a letter, at most 63 characters",
        id="repository-id",
    ),
    # -- Model Armor --------------------------------------------------------------------------
    pytest.param(
        {"model_armor": {"templates": [{"id": "t"}, {"id": "t"}], "guards": [GUARD]}},
        "model_armor: templates[1].id 't' is used twice; template ids are unique per location",
        id="duplicate-template-ids",
    ),
    pytest.param(
        {"model_armor": {"floor_setting": True}},
        "model_armor: floor_setting needs at least one template (its filters become the floor)",
        id="floor-setting-without-template",
    ),
    pytest.param(
        {"model_armor": {"templates": [{"id": "t", "sdp": "advanced"}], "guards": [GUARD]}},
        "model_armor.templates[0]: sdp 'advanced' needs sdp_advanced.inspect_template (a DLP template name)",
        id="sdp-advanced-without-templates",
    ),
    pytest.param(
        {"model_armor": {"templates": [{"id": "t", "sdp": "advanced", "sdp_advanced": {"inspect_template": "x"}}], "guards": [GUARD]}},
        "model_armor.templates[0]: sdp_advanced.inspect_template 'x' is not a DLP template name; use "
        "projects/PROJECT/locations/LOCATION/inspectTemplates/NAME",
        id="sdp-advanced-template-name",
    ),
    pytest.param(
        {"model_armor": {"templates": [{"id": "t", "pi_and_jailbreak": "ALWAYS"}], "guards": [GUARD]}},
        "model_armor.templates[0].pi_and_jailbreak: 'ALWAYS' is not supported; use LOW_AND_ABOVE, MEDIUM_AND_ABOVE or HIGH",
        id="confidence-level",
    ),
    pytest.param(
        {"model_armor": {"templates": [{"id": "t", "enforcement": "BLOCK"}], "guards": [GUARD]}},
        "model_armor.templates[0].enforcement: 'BLOCK' is not supported; use INSPECT_ONLY or INSPECT_AND_BLOCK",
        id="enforcement-type",
    ),
]


@pytest.mark.parametrize("values, message", REJECTIONS)
def test_rejections_name_path_value_and_what_is_allowed(values, message):
    assert problems(**values) == [message]


def test_every_problem_is_reported_at_once():
    found = problems(zones=["us-east4-a"], network={"pods_cidr": "10.0.0.0/14"})
    assert len(found) == 2, found


def test_adopted_proxy_only_subnet_is_left_out_of_overlap_checks():
    cfg = parse_stack_config(
        {**BASE, "network": {"proxy_only_subnets": [{"region": "us-central1", "cidr": "10.8.0.0/23", "existing": "shared-proxy"}]}}
    )
    assert cfg.proxy_only_subnets[0].existing == "shared-proxy"


def test_h100_zone_override_accepts_unlisted_zones():
    cfg = parse_stack_config(
        {
            **BASE,
            "zones": ["us-central1-f"],
            "cluster": {"h100_zones_override": ["us-central1-f"]},
            "node_pools": [{"autoscaling": {"max_nodes": 1}}],
        }
    )
    assert cfg.node_pools[0].machine.accelerator == "nvidia-h100-80gb"


def test_master_range_only_counts_for_private_clusters():
    # A public cluster has no master range in the VPC, so an "overlapping" default is fine.
    parse_stack_config({**BASE, "cluster": {"master_cidr": "10.0.0.0/28"}})


@pytest.mark.parametrize(
    "image",
    [
        "ghcr.io/inference-gateway/endpoint-picker:local",
        "us-central1-docker.pkg.dev/p/repo/endpoint-picker@sha256:" + "a" * 64,
        "localhost:5000/picker:v1",
    ],
)
def test_prebuilt_picker_image_references(image):
    assert parse_stack_config({**BASE, "picker_image": {"image": image}}).picker_image.image == image


def test_pool_names_follow_accelerator_count_and_machine():
    cfg = parse_stack_config(
        {
            **BASE,
            "node_pools": [
                {"machine_type": "a3-highgpu-8g"},
                {"machine_type": "a3-highgpu-1g", "provisioning": "spot"},
                {"machine_type": "a3-megagpu-8g", "provisioning": "flex-start"},
                {"machine_type": "a3-highgpu-8g", "provisioning": "reservation", "reservation": "r"},
            ],
        }
    )
    assert [cfg.node_pool_name(p) for p in cfg.node_pools] == [
        "gpu-h100x8-a3h8",
        "gpu-h100x1-a3h1-spot",
        "gpu-h100x8-a3m8-dws",
        "gpu-h100x8-a3h8-res",
    ]
