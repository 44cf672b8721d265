"""Pure builders for GKE: cluster settings, node pool settings, kubeconfig, node identities.

Everything here returns plain dicts / strings in pulumi-gcp 10.2's snake_case argument shapes, so
it is unit-tested without Pulumi and the components only pass the results through.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..catalog.machines import GpuMachine

if TYPE_CHECKING:
    from ..config import GpuNodePoolConfig, StackConfig

GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"}
"""GKE puts this taint on GPU nodes itself; declaring it keeps CPU pods off the H100s even if that
changes, and pods requesting nvidia.com/gpu get the toleration automatically."""

POOL_LABEL = "inference-gateway.dev/pool"
"""Node label carrying our pool name (the system pool is `system`)."""

SYSTEM_POOL = "system"

NODE_ROLES = (
    "roles/logging.logWriter",
    "roles/monitoring.metricWriter",
    "roles/monitoring.viewer",
    "roles/stackdriver.resourceMetadata.writer",
    "roles/artifactregistry.reader",
)
"""Least privilege for GKE nodes (GKE hardening guide): write logs and metrics, pull images."""

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
"""With a least-privilege service account, IAM (not scopes) limits what nodes can do."""

MONITORING_COMPONENTS = ("SYSTEM_COMPONENTS", "DCGM")
"""gcloud --monitoring=SYSTEM,DCGM: GPU metrics (DCGM) need managed Prometheus."""

def cluster_location(cfg: StackConfig) -> str:
    """Regional clusters live in the region; zonal ones in the first configured zone."""
    return cfg.region if cfg.cluster.regional else cfg.zones[0]


def cluster_node_locations(cfg: StackConfig) -> list[str] | None:
    """Zones of the cluster's nodes. A zonal cluster lists only its *additional* zones."""
    if cfg.cluster.regional:
        return list(cfg.zones)
    extra = [z for z in cfg.zones if z != cfg.zones[0]]
    return extra or None


def private_cluster_config(cfg: StackConfig) -> dict[str, Any] | None:
    """Only when nodes are private (the SDK: omit the block otherwise)."""
    c = cfg.cluster
    if not c.private_nodes:
        return None
    return {
        "enable_private_nodes": True,
        "enable_private_endpoint": c.private_endpoint,
        "master_ipv4_cidr_block": c.master_cidr,
        "master_global_access_config": {"enabled": c.master_global_access},
    }


def master_authorized_networks_config(cfg: StackConfig) -> dict[str, Any] | None:
    nets = cfg.cluster.master_authorized_networks
    if not nets:
        return None
    return {"cidr_blocks": [{"cidr_block": n, "display_name": f"authorized-{i}"} for i, n in enumerate(nets)]}


def cluster_settings(cfg: StackConfig) -> dict[str, Any]:
    """Every plain (non-Output) argument of the gcp.container.Cluster, by the SDK's names."""
    from .network import ip_allocation_policy

    c = cfg.cluster
    settings: dict[str, Any] = {
        "name": cfg.cluster_name,
        "location": cluster_location(cfg),
        "node_locations": cluster_node_locations(cfg),
        "min_master_version": c.min_master_version,
        "release_channel": {"channel": c.release_channel},
        "networking_mode": c.networking_mode,
        # Dataplane V2 (eBPF, Cilium) enforces the NetworkPolicies the stack renders per pool;
        # the legacy datapath ignores them unless the Calico addon is enabled.
        "datapath_provider": "ADVANCED_DATAPATH",
        "ip_allocation_policy": ip_allocation_policy(cfg),
        "gateway_api_config": {"channel": "CHANNEL_STANDARD"},
        "addons_config": {"http_load_balancing": {"disabled": False}},
        "workload_identity_config": {"workload_pool": f"{cfg.project}.svc.id.goog"},
        "monitoring_config": {
            "enable_components": list(MONITORING_COMPONENTS),
            "managed_prometheus": {"enabled": True},
        },
        "private_cluster_config": private_cluster_config(cfg),
        "master_authorized_networks_config": master_authorized_networks_config(cfg),
        "remove_default_node_pool": True,
        "initial_node_count": 1,
        "deletion_protection": cfg.deletion_protection,
        "resource_labels": dict(cfg.labels) or None,
        **external_model_settings(cfg),
    }
    return {k: v for k, v in settings.items() if v is not None}


def external_model_settings(cfg: StackConfig) -> dict[str, Any]:
    """What external models' egress proxies need of the cluster: FQDN network policies (egress to
    the provider's host only; Dataplane V2, set above) and, for a Secret Manager key, the Secret
    Manager add-on (the ``secrets-store-gke.csi.k8s.io`` driver mounting it)."""
    external = [m.external for m in cfg.models if m.external is not None]
    if not external:
        return {}
    out: dict[str, Any] = {"enable_fqdn_network_policy": True}
    if any(e.secret.kind == "secret-manager" for e in external):
        out["secret_manager_config"] = {"enabled": True}
    return out


def system_pool_settings(cfg: StackConfig, service_account: Any) -> dict[str, Any]:
    """The CPU pool for the picker and other non-GPU pods (per-zone autoscaling)."""
    c = cfg.cluster
    return {
        "name": SYSTEM_POOL,
        "node_locations": list(cfg.zones),
        "initial_node_count": max(c.system_pool_min_nodes, 1),
        "autoscaling": {
            "min_node_count": c.system_pool_min_nodes,
            "max_node_count": c.system_pool_max_nodes,
            "location_policy": "BALANCED",
        },
        "management": {"auto_repair": True, "auto_upgrade": True},
        "node_config": {
            "machine_type": c.system_pool_machine_type,
            "image_type": "COS_CONTAINERD",
            "disk_size_gb": 100,
            "disk_type": "pd-balanced",
            "labels": {POOL_LABEL: SYSTEM_POOL},
            "service_account": service_account,
            "oauth_scopes": [CLOUD_PLATFORM_SCOPE],
            "workload_metadata_config": {"mode": "GKE_METADATA"},
            "shielded_instance_config": {"enable_secure_boot": True, "enable_integrity_monitoring": True},
            **({"resource_labels": dict(cfg.labels)} if cfg.labels else {}),
        },
    }


# -- GPU node pools -----------------------------------------------------------------------------


def autoscaling(pool: GpuNodePoolConfig) -> dict[str, Any]:
    """Per-zone (min/max_node_count) or whole-pool (total_*) limits; config rejects mixing them."""
    a = pool.autoscaling
    out: dict[str, Any] = {"location_policy": a.location_policy}
    if a.total_max_nodes is not None:
        out["total_min_node_count"] = a.total_min_nodes if a.total_min_nodes is not None else 0
        out["total_max_node_count"] = a.total_max_nodes
    else:
        out["min_node_count"] = a.min_nodes if a.min_nodes is not None else 0
        out["max_node_count"] = a.max_nodes
    return out


def reservation_affinity(pool: GpuNodePoolConfig) -> dict[str, Any] | None:
    """Specific reservation by name; Spot and flex-start VMs cannot consume reservations, so they
    say NO_RESERVATION (gcloud --reservation-affinity=none); on-demand keeps GKE's default."""
    if pool.provisioning == "reservation":
        return {
            "consume_reservation_type": "SPECIFIC_RESERVATION",
            "key": "compute.googleapis.com/reservation-name",
            "values": [pool.reservation],
        }
    if pool.provisioning in ("spot", "flex-start"):
        return {"consume_reservation_type": "NO_RESERVATION"}
    return None


def local_ssd_count(pool: GpuNodePoolConfig) -> int:
    return pool.local_ssd_count if pool.local_ssd_count is not None else pool.machine.local_ssds


def gpu_node_config(
    cfg: StackConfig, pool: GpuNodePoolConfig, name: str, service_account: Any
) -> dict[str, Any]:
    """node_config of an H100 pool: accelerators from the machine table, provisioning model,
    local SSD ephemeral storage, image streaming, gVNIC, GPU taint and labels."""
    m: GpuMachine = pool.machine
    node: dict[str, Any] = {
        "machine_type": m.machine_type,
        "image_type": "COS_CONTAINERD",  # gcfs (image streaming) needs COS_CONTAINERD
        "disk_size_gb": pool.disk_size_gb,
        "disk_type": pool.disk_type,
        "guest_accelerators": [
            {
                "type": m.accelerator,
                "count": m.gpus,
                "gpu_driver_installation_config": {"gpu_driver_version": pool.gpu_driver_version},
            }
        ],
        "gcfs_config": {"enabled": pool.image_streaming},
        "gvnic": {"enabled": pool.gvnic},
        "taints": [dict(GPU_TAINT)],
        "labels": {"cloud.google.com/gke-accelerator": m.accelerator, POOL_LABEL: name},
        "service_account": service_account,
        "oauth_scopes": [CLOUD_PLATFORM_SCOPE],
        "workload_metadata_config": {"mode": "GKE_METADATA"},
    }
    if pool.provisioning == "spot":
        node["spot"] = True
    if pool.provisioning == "flex-start":
        node["flex_start"] = True
        node["max_run_duration"] = pool.max_run_duration or "604800s"
    elif pool.max_run_duration:
        node["max_run_duration"] = pool.max_run_duration
    affinity = reservation_affinity(pool)
    if affinity:
        node["reservation_affinity"] = affinity
    ssds = local_ssd_count(pool)
    if ssds:
        node["ephemeral_storage_local_ssd_config"] = {"local_ssd_count": ssds}
    if pool.secondary_boot_disk:
        node["secondary_boot_disks"] = [{"disk_image": pool.secondary_boot_disk, "mode": "CONTAINER_IMAGE_CACHE"}]
    if cfg.labels:
        node["resource_labels"] = dict(cfg.labels)
    return node


def gpu_pool_settings(cfg: StackConfig, pool: GpuNodePoolConfig, service_account: Any) -> dict[str, Any]:
    """Every argument of an H100 gcp.container.NodePool except `cluster`."""
    name = cfg.node_pool_name(pool)
    settings: dict[str, Any] = {
        "name": name,
        "location": cluster_location(cfg),
        "node_locations": list(pool.node_locations or cfg.zones),
        "initial_node_count": pool.initial_node_count,
        "autoscaling": autoscaling(pool),
        # Flex-start without queued provisioning: plain nodes for a Deployment, at most 7 days
        # each; GKE's flex-start how-to turns auto-repair off (a repaired VM would restart the
        # capacity request), auto-upgrade stays on.
        "management": {"auto_repair": pool.provisioning != "flex-start", "auto_upgrade": True},
        "node_config": gpu_node_config(cfg, pool, name, service_account),
    }
    if pool.provisioning != "flex-start":
        # Surge needs a spare H100 VM that usually does not exist: upgrade one node at a time.
        settings["upgrade_settings"] = {"strategy": "SURGE", "max_surge": 0, "max_unavailable": 1}
    if pool.compact_placement:
        settings["placement_policy"] = {"type": "COMPACT"}
    return settings


# -- kubeconfig ---------------------------------------------------------------------------------


def kubeconfig(cluster_name: str, endpoint: str, ca_certificate: str) -> str:
    """A kubeconfig that authenticates with gke-gcloud-auth-plugin (exec), like
    `gcloud container clusters get-credentials`; no token is stored in state."""
    context = f"gke_{cluster_name}"
    return f"""apiVersion: v1
kind: Config
clusters:
- name: {context}
  cluster:
    certificate-authority-data: {ca_certificate}
    server: https://{endpoint}
contexts:
- name: {context}
  context:
    cluster: {context}
    user: {context}
current-context: {context}
preferences: {{}}
users:
- name: {context}
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: gke-gcloud-auth-plugin
      installHint: Install gke-gcloud-auth-plugin for use with kubectl by following
        https://cloud.google.com/kubernetes-engine/docs/how-to/cluster-access-for-kubectl#install_plugin
      provideClusterInfo: true
      interactiveMode: Never
"""
