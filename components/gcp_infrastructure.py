"""The GCP half of InferencePlatform, in dependency order:

APIs -> node service account -> network -> GKE cluster (+ system pool) -> H100 node pools ->
picker image -> Model Armor. Every component is a child of the platform (`child` options).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi

from .apis import Apis, ApisArgs
from .egress_identities import EgressIdentities, EgressIdentitiesArgs
from .config import StackConfig
from .gke_cluster import GkeCluster, GkeClusterArgs
from .gpu_node_pool import GpuNodePool, GpuNodePoolArgs
from .model_armor import ModelArmor, ModelArmorArgs
from .network import Network, NetworkArgs
from .node_service_account import NodeServiceAccount, NodeServiceAccountArgs
from .picker_image import PickerImage, PickerImageArgs


@dataclass
class GcpInfrastructure:
    """What the Kubernetes side of the platform uses. On an existing cluster (cluster.existing,
    components/existing_cluster.py) apis, network and cluster are None and node_pools empty."""

    apis: Apis | None
    network: Network | None
    cluster: GkeCluster | None
    node_pools: list[GpuNodePool]
    picker: PickerImage
    model_armor: ModelArmor | None
    kubeconfig: pulumi.Input[str]
    """Secret; exec-based (gke-gcloud-auth-plugin). Existing cluster: a path or a secret."""
    picker_image: pulumi.Output[str]
    """Image reference by digest (or the configured prebuilt reference)."""
    model_armor_templates: dict[str, pulumi.Output[str]]
    """Template id -> projects/P/locations/L/templates/T."""
    cluster_ready: list[pulumi.Resource]
    """Cluster, system pool, GPU pools and the networkservices API: the Kubernetes provider
    waits for them."""
    exports: dict[str, Any] = field(default_factory=dict)
    kubeconfig_context: str | None = None
    """The kubeconfig context to use (existing clusters); None: its current-context."""
    egress_identities: EgressIdentities | None = None
    """External models' Secret Manager readers (emails by pool, Workload Identity bindings)."""


def build_gcp_infrastructure(name: str, cfg: StackConfig, child: pulumi.ResourceOptions) -> GcpInfrastructure:
    secret_manager = any(m.external is not None and m.external.secret.kind == "secret-manager" for m in cfg.models)
    apis = Apis(f"{name}-apis", ApisArgs(project=cfg.project, config=cfg.apis,
                                         extra_services=("secretmanager.googleapis.com",) if secret_manager else ()),
                opts=child)
    after = apis.after

    node_sa = NodeServiceAccount(
        f"{name}-nodes",
        NodeServiceAccountArgs(project=cfg.project, name_prefix=cfg.name_prefix, depends_on=after("iam")),
        opts=child,
    )
    network = Network(f"{name}-network", NetworkArgs(config=cfg, depends_on=after("compute")), opts=child)
    cluster = GkeCluster(
        f"{name}-gke",
        GkeClusterArgs(
            config=cfg,
            network=network.network_self_link,
            subnetwork=network.subnet_self_link,
            node_service_account=node_sa.email,
            depends_on=[*after("container", "compute", "monitoring", "logging"), *network.resources, *node_sa.ready],
        ),
        opts=child,
    )
    pools = [
        GpuNodePool(
            f"{name}-{cfg.node_pool_name(pool)}",
            GpuNodePoolArgs(
                config=cfg,
                pool=pool,
                cluster=cluster.cluster.id,
                service_account=node_sa.email,
                depends_on=node_sa.ready,
            ),
            opts=child,
        )
        for pool in cfg.node_pools
    ]
    picker = PickerImage(f"{name}-picker-image", PickerImageArgs(config=cfg, depends_on=after("artifactregistry")), opts=child)
    armor = None
    templates: dict[str, pulumi.Output[str]] = {}
    if cfg.model_armor is not None:
        armor = ModelArmor(
            f"{name}-model-armor",
            ModelArmorArgs(config=cfg, model_armor=cfg.model_armor, depends_on=after("modelarmor")),
            opts=child,
        )
        templates = armor.templates

    identities = None
    if secret_manager:
        identities = EgressIdentities(f"{name}-egress-identities",
                                      EgressIdentitiesArgs(config=cfg, depends_on=after("iam", "secretmanager")), opts=child)

    exports: dict[str, Any] = {
        "clusterEndpoint": cluster.endpoint,
        "clusterLocation": cluster.location,
        "networkName": network.network_name,
        "nodePools": [p.name for p in pools],
        "pickerImage": picker.ref,
    }
    return GcpInfrastructure(
        apis=apis,
        network=network,
        cluster=cluster,
        node_pools=pools,
        picker=picker,
        model_armor=armor,
        kubeconfig=cluster.kubeconfig,
        picker_image=picker.ref,
        model_armor_templates=templates,
        # The gateways' load balancers and service extensions need the networkservices API.
        cluster_ready=[*cluster.ready, *(p.node_pool for p in pools), *after("networkservices")],
        exports=exports,
        egress_identities=identities,
    )
