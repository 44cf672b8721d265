"""Pure GCP builders (no Pulumi): cluster and node pool settings, network shapes, kubeconfig,
Model Armor filter configs, the picker image's content hash."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from components.builders import gke, model_armor_templates as ma, network, picker_image
from components.catalog.machines import H100_MACHINES
from components.catalog.names import node_service_account_id, template_name
from components.stack_config import parse_stack_config

SA = "nodes@p.iam.gserviceaccount.com"


def cfg(**values: Any):
    return parse_stack_config({"project": "igw-test-project", **values})


# -- cluster ----------------------------------------------------------------------------------


def test_cluster_settings_have_what_inference_gateway_needs():
    s = gke.cluster_settings(cfg())
    assert s["networking_mode"] == "VPC_NATIVE"
    assert s["ip_allocation_policy"] == {"cluster_secondary_range_name": "pods", "services_secondary_range_name": "services"}
    assert s["gateway_api_config"] == {"channel": "CHANNEL_STANDARD"}
    assert s["addons_config"] == {"http_load_balancing": {"disabled": False}}
    assert s["min_master_version"] == "1.32.3"
    assert s["release_channel"] == {"channel": "REGULAR"}
    assert s["workload_identity_config"] == {"workload_pool": "igw-test-project.svc.id.goog"}
    assert s["monitoring_config"] == {
        "enable_components": ["SYSTEM_COMPONENTS", "DCGM"],
        "managed_prometheus": {"enabled": True},
    }
    assert s["remove_default_node_pool"] is True and s["initial_node_count"] == 1
    assert s["deletion_protection"] is False
    assert (s["location"], s["node_locations"]) == ("us-central1", ["us-central1-a", "us-central1-c"])
    assert "private_cluster_config" not in s, "the block is omitted unless nodes are private"
    assert "master_authorized_networks_config" not in s


def test_private_cluster_and_authorized_networks():
    s = gke.cluster_settings(
        cfg(
            environment="production",
            cluster={
                "private_nodes": True,
                "private_endpoint": True,
                "master_cidr": "172.16.0.16/28",
                "master_global_access": True,
                "master_authorized_networks": ["192.0.2.0/24"],
            },
        )
    )
    assert s["private_cluster_config"] == {
        "enable_private_nodes": True,
        "enable_private_endpoint": True,
        "master_ipv4_cidr_block": "172.16.0.16/28",
        "master_global_access_config": {"enabled": True},
    }
    assert s["master_authorized_networks_config"] == {"cidr_blocks": [{"cidr_block": "192.0.2.0/24", "display_name": "authorized-0"}]}
    assert s["deletion_protection"] is True


def test_zonal_cluster_lists_only_additional_zones():
    zonal = cfg(cluster={"regional": False})
    assert gke.cluster_location(zonal) == "us-central1-a"
    assert gke.cluster_node_locations(zonal) == ["us-central1-c"]
    assert gke.cluster_node_locations(cfg(cluster={"regional": False}, zones=["us-central1-a"])) is None


def test_system_pool_is_cpu_with_label_and_workload_identity():
    s = gke.system_pool_settings(cfg(), SA)
    node = s["node_config"]
    assert s["name"] == "system"
    assert node["labels"] == {"inference-gateway.dev/pool": "system"}
    assert node["workload_metadata_config"] == {"mode": "GKE_METADATA"}
    assert node["service_account"] == SA
    assert "guest_accelerators" not in node
    assert s["autoscaling"] == {"min_node_count": 1, "max_node_count": 3, "location_policy": "BALANCED"}


# -- GPU node pools ---------------------------------------------------------------------------


def pool_settings(**pool: Any) -> dict[str, Any]:
    c = cfg(node_pools=[pool])
    return gke.gpu_pool_settings(c, c.node_pools[0], SA)


@pytest.mark.parametrize("machine", sorted(H100_MACHINES))
def test_accelerators_come_from_the_machine_table(machine):
    m = H100_MACHINES[machine]
    node = pool_settings(machine_type=machine)["node_config"]
    assert node["guest_accelerators"] == [
        {"type": m.accelerator, "count": m.gpus, "gpu_driver_installation_config": {"gpu_driver_version": "LATEST"}}
    ]
    assert node["labels"]["cloud.google.com/gke-accelerator"] == m.accelerator
    assert node["ephemeral_storage_local_ssd_config"] == {"local_ssd_count": m.local_ssds}


def test_on_demand_pool_defaults():
    s = pool_settings()
    node = s["node_config"]
    assert s["name"] == "gpu-h100x8-a3h8"
    assert s["node_locations"] == ["us-central1-a", "us-central1-c"]
    assert s["autoscaling"] == {"location_policy": "ANY", "min_node_count": 0, "max_node_count": 1}
    assert s["management"] == {"auto_repair": True, "auto_upgrade": True}
    assert s["upgrade_settings"] == {"strategy": "SURGE", "max_surge": 0, "max_unavailable": 1}
    assert node["taints"] == [{"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"}]
    assert node["labels"]["inference-gateway.dev/pool"] == "gpu-h100x8-a3h8"
    assert node["image_type"] == "COS_CONTAINERD" and node["gcfs_config"] == {"enabled": True}
    assert node["gvnic"] == {"enabled": True}
    assert node["workload_metadata_config"] == {"mode": "GKE_METADATA"}
    assert node["service_account"] == SA
    assert "reservation_affinity" not in node and "spot" not in node and "flex_start" not in node


def test_spot_pool_uses_no_reservation():
    node = pool_settings(machine_type="a3-highgpu-1g", provisioning="spot")["node_config"]
    assert node["spot"] is True
    assert node["reservation_affinity"] == {"consume_reservation_type": "NO_RESERVATION"}


def test_flex_start_pool_without_queued_provisioning():
    s = pool_settings(provisioning="flex-start", autoscaling={"total_max_nodes": 4})
    node = s["node_config"]
    assert node["flex_start"] is True and node["max_run_duration"] == "604800s"
    assert node["reservation_affinity"] == {"consume_reservation_type": "NO_RESERVATION"}
    assert "queued_provisioning" not in s
    assert s["management"] == {"auto_repair": False, "auto_upgrade": True}
    assert s["autoscaling"] == {"location_policy": "ANY", "total_min_node_count": 0, "total_max_node_count": 4}
    assert "upgrade_settings" not in s


def test_specific_reservation():
    node = pool_settings(provisioning="reservation", reservation="h100-res")["node_config"]
    assert node["reservation_affinity"] == {
        "consume_reservation_type": "SPECIFIC_RESERVATION",
        "key": "compute.googleapis.com/reservation-name",
        "values": ["h100-res"],
    }


def test_secondary_boot_disk_ssd_opt_out_and_compact_placement():
    s = pool_settings(secondary_boot_disk="global/images/vllm-cache", local_ssd_count=0, compact_placement=True, gvnic=False)
    node = s["node_config"]
    assert node["secondary_boot_disks"] == [{"disk_image": "global/images/vllm-cache", "mode": "CONTAINER_IMAGE_CACHE"}]
    assert "ephemeral_storage_local_ssd_config" not in node
    assert node["gvnic"] == {"enabled": False}
    assert s["placement_policy"] == {"type": "COMPACT"}


def test_node_roles_are_least_privilege():
    assert set(gke.NODE_ROLES) == {
        "roles/logging.logWriter",
        "roles/monitoring.metricWriter",
        "roles/monitoring.viewer",
        "roles/stackdriver.resourceMetadata.writer",
        "roles/artifactregistry.reader",
    }
    assert node_service_account_id("igw-prod") == "igw-prod-nodes"
    with pytest.raises(ValueError, match="not a valid service account id"):
        node_service_account_id("x" * 30)


def test_kubeconfig_uses_the_gke_auth_plugin():
    doc = yaml.safe_load(gke.kubeconfig("p_us-central1_c", "203.0.113.10", "Q0E="))
    assert doc["clusters"][0]["cluster"] == {"certificate-authority-data": "Q0E=", "server": "https://203.0.113.10"}
    user = doc["users"][0]["user"]
    assert user["exec"]["command"] == "gke-gcloud-auth-plugin"
    assert user["exec"]["apiVersion"] == "client.authentication.k8s.io/v1beta1"
    assert "token" not in user
    assert doc["current-context"] == doc["contexts"][0]["name"]


# -- network ----------------------------------------------------------------------------------


def test_network_names_and_ranges():
    c = cfg(name_prefix="igw-x", network={"pods_range_name": "gke-pods", "services_range_name": "gke-svc"})
    assert network.network_name(c) == "igw-x-vpc"
    assert network.node_subnet_name(c) == "igw-x-nodes-us-central1"
    assert network.proxy_only_subnet_name(c, "us-central1") == "igw-x-proxy-only-us-central1"
    assert network.secondary_ranges(c) == [
        {"range_name": "gke-pods", "ip_cidr_range": "10.4.0.0/14"},
        {"range_name": "gke-svc", "ip_cidr_range": "10.8.0.0/20"},
    ]
    assert network.ip_allocation_policy(c) == {"cluster_secondary_range_name": "gke-pods", "services_secondary_range_name": "gke-svc"}


def test_adopted_names():
    c = cfg(network={"existing_network": "shared", "existing_subnet": "shared-gke", "proxy_only_subnets": [{"region": "us-central1", "existing": "shared-proxy"}]})
    assert (network.network_name(c), network.node_subnet_name(c)) == ("shared", "shared-gke")
    assert network.proxy_only_subnet_name(c, "us-central1") == "shared-proxy"


def test_nat_follows_private_nodes_unless_set():
    assert network.nat_enabled(cfg()) is False
    assert network.nat_enabled(cfg(cluster={"private_nodes": True})) is True
    assert network.nat_enabled(cfg(cluster={"private_nodes": True}, network={"nat": False})) is False
    nat = network.router_nat_args(cfg(), "SUBNET")
    assert nat["source_subnetwork_ip_ranges_to_nat"] == "LIST_OF_SUBNETWORKS"
    assert nat["subnetworks"] == [{"name": "SUBNET", "source_ip_ranges_to_nats": ["ALL_IP_RANGES"]}]


# -- Model Armor ------------------------------------------------------------------------------


def template(**values: Any):
    guard = {"model": "default", "prompt_template": "t", "response_template": "t"}
    return cfg(model_armor={"templates": [{"id": "t", **values}], "guards": [guard]}).model_armor.templates[0]


def test_default_template_filters():
    fc = ma.filter_config(template())
    assert fc["rai_settings"]["rai_filters"] == [
        {"filter_type": f, "confidence_level": "MEDIUM_AND_ABOVE"}
        for f in ("DANGEROUS", "HARASSMENT", "HATE_SPEECH", "SEXUALLY_EXPLICIT")
    ]
    assert fc["pi_and_jailbreak_filter_settings"] == {"filter_enforcement": "ENABLED", "confidence_level": "MEDIUM_AND_ABOVE"}
    assert fc["malicious_uri_filter_settings"] == {"filter_enforcement": "ENABLED"}
    assert fc["sdp_settings"] == {"basic_config": {"filter_enforcement": "ENABLED"}}
    assert ma.template_metadata(template()) == {
        "enforcement_type": "INSPECT_AND_BLOCK",
        "log_sanitize_operations": True,
        "log_template_operations": True,
    }


def test_template_variants():
    inspect = "projects/p/locations/us-central1/inspectTemplates/i"
    deid = "projects/p/locations/us-central1/deidentifyTemplates/d"
    fc = ma.filter_config(
        template(
            pi_and_jailbreak=None,
            malicious_uri=False,
            rai_filters={"HATE_SPEECH": "HIGH"},
            sdp="advanced",
            sdp_advanced={"inspect_template": inspect, "deidentify_template": deid},
        )
    )
    assert fc["rai_settings"] == {"rai_filters": [{"filter_type": "HATE_SPEECH", "confidence_level": "HIGH"}]}
    assert fc["pi_and_jailbreak_filter_settings"] == {"filter_enforcement": "DISABLED"}
    assert fc["malicious_uri_filter_settings"] == {"filter_enforcement": "DISABLED"}
    assert fc["sdp_settings"] == {"advanced_config": {"inspect_template": inspect, "deidentify_template": deid}}
    assert "sdp_settings" not in ma.filter_config(template(sdp="off"))
    assert ma.template_metadata(template(enforcement="INSPECT_ONLY", log_operations=False))["enforcement_type"] == "INSPECT_ONLY"


def test_callout_identity_and_names():
    assert ma.callout_member("42") == "serviceAccount:service-42@gcp-sa-dep.iam.gserviceaccount.com"
    assert template_name("p", "us-central1", "t") == "projects/p/locations/us-central1/templates/t"
    assert set(ma.CALLOUT_ROLES) == {"roles/modelarmor.calloutUser", "roles/modelarmor.user", "roles/serviceusage.serviceUsageConsumer"}


# -- picker image -----------------------------------------------------------------------------


def make_tree(root: Path) -> Path:
    (root / "pkg").mkdir(parents=True)
    (root / "Dockerfile").write_text("FROM python:3.11-slim\n")
    (root / "pkg" / "main.py").write_text("print('hi')\n")
    return root


def test_context_hash_is_content_addressed(tmp_path):
    a = make_tree(tmp_path / "a")
    b = make_tree(tmp_path / "b")
    assert picker_image.context_hash(a) == picker_image.context_hash(b), "same tree, same tag, wherever it lives"
    (b / "pkg" / "main.py").write_text("print('changed')\n")
    assert picker_image.context_hash(a) != picker_image.context_hash(b)


def test_context_hash_ignores_local_by_products_and_dockerignore(tmp_path):
    a = make_tree(tmp_path / "a")
    before = picker_image.context_hash(a)
    (a / "pkg" / "__pycache__").mkdir()
    (a / "pkg" / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"\0")
    (a / ".dockerignore").write_text("# local\nnotes/\n")
    (a / "notes").mkdir()
    (a / "notes" / "todo.txt").write_text("x")
    after = picker_image.context_hash(a)
    assert after != before, ".dockerignore itself is part of the context"
    (a / "notes" / "todo.txt").write_text("y")
    assert picker_image.context_hash(a) == after


def test_image_tag():
    tag = picker_image.image_tag("us-central1-docker.pkg.dev/p/inference-gateway", "abc123")
    assert tag == "us-central1-docker.pkg.dev/p/inference-gateway/endpoint-picker:abc123"
    assert picker_image.registry_host("europe-west4") == "europe-west4-docker.pkg.dev"


def test_picker_tree_hash_is_a_12_digit_tag():
    picker = Path(__file__).resolve().parents[2] / "picker"
    assert len(picker_image.context_hash(picker)) == 12
    assert picker_image.context_hash(picker) == picker_image.context_hash(picker)


def test_adopted_subnet_range_check():
    c = cfg(network={"existing_network": "v", "existing_subnet": "s"})
    network.check_adopted_ranges(c, ["pods", "services", "other"])
    with pytest.raises(ValueError) as err:
        network.check_adopted_ranges(c, ["gke-pods"])
    assert str(err.value) == (
        "network.existing_subnet: 's' has no secondary range named 'pods' or 'services' (it has: gke-pods); "
        "set network.pods_range_name / network.services_range_name to its range names"
    )
