"""GkeCluster: the VPC-native GKE cluster with the Gateway API, plus its CPU system pool."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import pulumi
import pulumi_gcp as gcp

from .builders import gke as b
from .config import StackConfig


@dataclass(frozen=True)
class GkeClusterArgs:
    config: StackConfig
    network: pulumi.Input[str]
    """VPC self link."""
    subnetwork: pulumi.Input[str]
    """Node subnet self link; it carries the pod and service secondary ranges named in config."""
    node_service_account: pulumi.Input[str]
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)
    """APIs, created network pieces, the node service account's role bindings."""


class GkeCluster(pulumi.ComponentResource):
    """A GKE cluster fit for GKE Inference Gateway (GKE >= 1.32.3, VPC-native, Gateway API on the
    standard channel, HttpLoadBalancing on), with Workload Identity, managed Prometheus with DCGM
    GPU metrics, optional private nodes, and no default node pool: a CPU `system` pool runs the
    endpoint picker and other CPU pods, GPU pools are separate `GpuNodePool`s.

    `kubeconfig` (a secret) authenticates through gke-gcloud-auth-plugin, so it holds no token.
    It points at `endpoint`, which is the private address when `cluster.private_endpoint` is on:
    then `pulumi up` must run from a network that reaches it (inside the VPC, or a peered one
    with `master_global_access`) and be listed in `master_authorized_networks`.
    Deletion protection follows `config.deletion_protection` (on in production): destroying a
    protected cluster fails until `cluster.deletion_protection: false` has been applied.
    """

    cluster: gcp.container.Cluster
    name: pulumi.Output[str]
    location: str
    endpoint: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]
    ready: list[pulumi.Resource]
    """The cluster and its system pool: Kubernetes objects wait for them."""

    def __init__(self, name: str, args: GkeClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("inference-gateway:gcp:GkeCluster", name, None, opts)
        cfg = args.config
        settings = b.cluster_settings(cfg)
        self.location = settings["location"]
        self.cluster = gcp.container.Cluster(
            f"{name}",
            project=cfg.project,
            network=args.network,
            subnetwork=args.subnetwork,
            # Only for the bootstrap node of the removed default pool: keeps the Compute Engine
            # default account (often disabled or Editor) out of the picture.
            node_config={
                "service_account": args.node_service_account,
                "oauth_scopes": [b.CLOUD_PLATFORM_SCOPE],
                "workload_metadata_config": {"mode": "GKE_METADATA"},
            },
            **settings,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=list(args.depends_on),
                # The default pool is deleted right after creation; its node_config never matters again.
                ignore_changes=["nodeConfig"],
            ),
        )
        self.name = self.cluster.name
        self.endpoint = self.cluster.endpoint

        system = b.system_pool_settings(cfg, args.node_service_account)
        self.system_pool = gcp.container.NodePool(
            f"{name}-system",
            project=cfg.project,
            cluster=self.cluster.id,
            location=self.location,
            **system,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.ready = [self.cluster, self.system_pool]

        self.kubeconfig = pulumi.Output.secret(
            pulumi.Output.all(self.cluster.name, self.cluster.endpoint, self.cluster.master_auth.cluster_ca_certificate).apply(
                lambda v: b.kubeconfig(f"{cfg.project}_{self.location}_{v[0]}", v[1], v[2])
            )
        )
        self.register_outputs({"name": self.name, "endpoint": self.endpoint, "kubeconfig": self.kubeconfig})
