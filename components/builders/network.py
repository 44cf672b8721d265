"""Pure builders for the VPC side: names, subnet secondary ranges, NAT scope (no Pulumi)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config import StackConfig


def network_name(cfg: StackConfig) -> str:
    """The VPC's name: the adopted one, or <name_prefix>-vpc."""
    return cfg.network.existing_network or f"{cfg.name_prefix}-vpc"


def node_subnet_name(cfg: StackConfig) -> str:
    """The node subnet's name: the adopted one, or <name_prefix>-nodes-<region>."""
    return cfg.network.existing_subnet or f"{cfg.name_prefix}-nodes-{cfg.region}"


def proxy_only_subnet_name(cfg: StackConfig, region: str) -> str:
    """<name_prefix>-proxy-only-<region>: one ACTIVE proxy-only subnet per VPC and region."""
    for p in cfg.proxy_only_subnets:
        if p.region == region and p.existing:
            return p.existing
    return f"{cfg.name_prefix}-proxy-only-{region}"


def secondary_ranges(cfg: StackConfig) -> list[dict[str, str]]:
    """The node subnet's secondary ranges: pods first, then services (VPC-native GKE)."""
    net = cfg.network
    return [
        {"range_name": net.pods_range_name, "ip_cidr_range": net.pods_cidr},
        {"range_name": net.services_range_name, "ip_cidr_range": net.services_cidr},
    ]


def ip_allocation_policy(cfg: StackConfig) -> dict[str, str]:
    """The cluster's ip_allocation_policy: the secondary range NAMES of the node subnet."""
    return {
        "cluster_secondary_range_name": cfg.network.pods_range_name,
        "services_secondary_range_name": cfg.network.services_range_name,
    }


def nat_enabled(cfg: StackConfig) -> bool:
    """Cloud NAT gives private nodes egress (Hugging Face downloads, image pulls outside Google)."""
    if cfg.network.nat is not None:
        return cfg.network.nat
    return cfg.cluster.private_nodes


def router_nat_args(cfg: StackConfig, subnet_self_link: Any) -> dict[str, Any]:
    """Cloud NAT scoped to the node subnet only, so it never collides with NATs that other
    subnets of an adopted VPC already have (a subnet range can be served by one NAT only)."""
    return {
        "nat_ip_allocate_option": "AUTO_ONLY",
        "source_subnetwork_ip_ranges_to_nat": "LIST_OF_SUBNETWORKS",
        "subnetworks": [{"name": subnet_self_link, "source_ip_ranges_to_nats": ["ALL_IP_RANGES"]}],
        "log_config": {"enable": True, "filter": "ERRORS_ONLY"},
    }


def check_adopted_ranges(cfg: StackConfig, range_names: list[str]) -> None:
    """An adopted node subnet must already carry the configured pod and service range names."""
    net = cfg.network
    missing = [n for n in (net.pods_range_name, net.services_range_name) if n not in range_names]
    if missing:
        raise ValueError(
            f"network.existing_subnet: {net.existing_subnet!r} has no secondary range named "
            f"{' or '.join(repr(m) for m in missing)} (it has: {', '.join(range_names) or 'none'}); "
            "set network.pods_range_name / network.services_range_name to its range names"
        )
