"""Network: custom-mode VPC, node subnet with pod/service ranges, proxy-only subnets, NAT."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import pulumi
import pulumi_gcp as gcp

from .builders import network as b
from .config import StackConfig


@dataclass(frozen=True)
class NetworkArgs:
    config: StackConfig
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)
    """Usually the compute API."""


class Network(pulumi.ComponentResource):
    """VPC-native networking for GKE Inference Gateway.

    Creates what is missing and adopts what exists: `network.existing_network` adopts a VPC by
    name (looked up, never modified), `network.existing_subnet` also adopts its node subnet (which
    must already carry the pod and service secondary ranges named in the config), and a proxy-only
    subnet with `existing` set is used as is. Created pieces:

    - custom-mode VPC (`auto_create_subnetworks=False`, routing mode REGIONAL);
    - node subnet in the stack's region with secondary ranges for pods and services and Private
      Google Access (private nodes reach Google APIs without NAT);
    - one ACTIVE `REGIONAL_MANAGED_PROXY` subnet per configured region: regional Envoy gateways
      (gke-l7-regional-external-managed, gke-l7-rilb) need it;
    - Cloud Router + NAT for the node subnet when nodes are private (or `network.nat: true`).
    """

    network_self_link: pulumi.Output[str]
    network_name: pulumi.Output[str]
    subnet_self_link: pulumi.Output[str]
    subnet_name: pulumi.Output[str]
    proxy_only_subnets: dict[str, pulumi.Output[str]]
    """region -> proxy-only subnet name (created or adopted)."""
    resources: list[pulumi.Resource]
    """What the cluster must wait for (created network pieces)."""

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("inference-gateway:gcp:Network", name, None, opts)
        cfg = args.config
        net = cfg.network
        child = pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on))
        invoke = pulumi.InvokeOptions(parent=self)
        self.resources = []

        if net.existing_network:
            found = gcp.compute.get_network_output(name=net.existing_network, project=cfg.project, opts=invoke)
            self.network_self_link = found.self_link
            self.network_name = found.name
        else:
            vpc = gcp.compute.Network(
                f"{name}-vpc",
                name=b.network_name(cfg),
                project=cfg.project,
                auto_create_subnetworks=False,
                routing_mode="REGIONAL",
                description=f"inference-gateway {cfg.name_prefix}: GKE nodes, pods, services, regional gateways",
                opts=child,
            )
            self.resources.append(vpc)
            self.network_self_link = vpc.self_link
            self.network_name = vpc.name

        if net.existing_subnet:
            found_subnet = gcp.compute.get_subnetwork_output(
                name=net.existing_subnet, region=cfg.region, project=cfg.project, opts=invoke
            )
            # Fail the deployment with a clear message rather than let GKE reject the cluster.
            checked = found_subnet.secondary_ip_ranges.apply(
                lambda ranges: b.check_adopted_ranges(cfg, [r.range_name for r in ranges or []])
            )
            self.subnet_self_link = pulumi.Output.all(found_subnet.self_link, checked).apply(lambda v: v[0])
            self.subnet_name = found_subnet.name
        else:
            subnet = gcp.compute.Subnetwork(
                f"{name}-nodes",
                name=b.node_subnet_name(cfg),
                project=cfg.project,
                region=cfg.region,
                network=self.network_self_link,
                ip_cidr_range=net.node_subnet_cidr,
                secondary_ip_ranges=b.secondary_ranges(cfg),
                private_ip_google_access=True,
                stack_type="IPV4_ONLY",
                opts=child,
            )
            self.resources.append(subnet)
            self.subnet_self_link = subnet.self_link
            self.subnet_name = subnet.name

        self.proxy_only_subnets = {}
        for p in cfg.proxy_only_subnets:
            if p.existing:
                self.proxy_only_subnets[p.region] = pulumi.Output.from_input(p.existing)
                continue
            proxy = gcp.compute.Subnetwork(
                f"{name}-proxy-only-{p.region}",
                name=b.proxy_only_subnet_name(cfg, p.region),
                project=cfg.project,
                region=p.region,
                network=self.network_self_link,
                ip_cidr_range=p.cidr,
                purpose="REGIONAL_MANAGED_PROXY",
                role="ACTIVE",
                opts=child,
            )
            self.resources.append(proxy)
            self.proxy_only_subnets[p.region] = proxy.name

        if b.nat_enabled(cfg):
            router = gcp.compute.Router(
                f"{name}-router",
                name=f"{cfg.name_prefix}-router-{cfg.region}",
                project=cfg.project,
                region=cfg.region,
                network=self.network_self_link,
                opts=child,
            )
            nat = gcp.compute.RouterNat(
                f"{name}-nat",
                name=f"{cfg.name_prefix}-nat-{cfg.region}",
                project=cfg.project,
                region=cfg.region,
                router=router.name,
                **b.router_nat_args(cfg, self.subnet_self_link),
                opts=child,
            )
            self.resources += [router, nat]

        self.register_outputs(
            {
                "network": self.network_name,
                "subnet": self.subnet_name,
                "proxyOnlySubnets": self.proxy_only_subnets,
            }
        )
