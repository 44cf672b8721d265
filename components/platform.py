"""InferencePlatform: composes every component from one validated StackConfig.

Order (each step depends on the ones before it): APIs -> network -> GKE cluster -> node pools ->
picker image -> Model Armor templates (on an existing cluster, cluster.existing: only the last
two) -> Kubernetes provider -> per pool: model servers,
InferencePool + picker, routing objects -> gateways, routes, GKE policies, Model Armor
extension -> observability.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from .config import StackConfig
from .existing_cluster import build_existing_cluster
from .gateways import build_gateway_layer
from .gcp_infrastructure import build_gcp_infrastructure
from .secrets import StackSecrets
from .namespace import StackNamespace
from .network_policies import NetworkPolicies, NetworkPoliciesArgs, api_server_cidrs
from .serving import Serving


class InferencePlatform(pulumi.ComponentResource):
    """The whole platform for one stack."""

    def __init__(self, name: str, config: StackConfig, opts: pulumi.ResourceOptions | None = None,
                 secrets: StackSecrets | None = None):
        """`secrets`: hfToken, apiKeys, kubeconfig; default: the stack's secret config values."""
        super().__init__("inference-gateway:platform:InferencePlatform", name, None, opts)
        self.config = config
        secrets = secrets if secrets is not None else StackSecrets.from_config()
        self._exports: dict[str, Any] = {
            "project": config.project,
            "region": config.region,
            "clusterName": config.cluster_name,
        }

        # GCP: APIs, network, cluster, node pools, picker image, Model Armor templates; on an
        # existing cluster only the picker image and Model Armor templates.
        child = pulumi.ResourceOptions(parent=self)
        if config.cluster.existing is None:
            self.gcp = build_gcp_infrastructure(name, config, child)
        else:
            self.gcp = build_existing_cluster(name, config, child, secrets)
        self._exports.update(self.gcp.exports)

        # Kubernetes objects wait for the cluster and its node pools (cluster_ready).
        self.k8s_provider = k8s.Provider(
            f"{name}-gke" if config.cluster.existing is None else f"{name}-existing-cluster",
            kubeconfig=self.gcp.kubeconfig,
            context=self.gcp.kubeconfig_context,
            enable_server_side_apply=True,
            # ConfigMaps change in place (the provider's default replaces them, deleting first,
            # since their names are fixed): the picker rolls through its config-hash annotation
            # and the LoRA syncer re-reads its adapters file.
            enable_config_map_mutable=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=self.gcp.cluster_ready),
        )
        # The stack's namespace first; every other Kubernetes object depends on it.
        self.namespace = StackNamespace(
            f"{name}-namespace", config, opts=pulumi.ResourceOptions(parent=self, provider=self.k8s_provider)
        )
        k8s_opts = pulumi.ResourceOptions(
            parent=self, provider=self.k8s_provider, transformations=self.namespace.after_namespace()
        )
        self._exports.update({"namespace": self.namespace.name, "podSecurity": self.namespace.level})

        # Model servers, InferencePools with their pickers, routing objects, CRDs.
        self.serving = Serving(f"{name}-serving", config, self.gcp.picker_image, opts=k8s_opts, secrets=secrets,
                               egress_identities=self.gcp.egress_identities)
        self._exports.update(self.serving.exports())
        self.network_policies = NetworkPolicies(
            f"{name}-network-policies",
            NetworkPoliciesArgs(config=config, api_server_cidrs=api_server_cidrs(config, self.gcp.cluster)),
            opts=k8s_opts,
        )

        # Gateways, routes, GKE policies, the Model Armor extension, observability.
        self.gateway_layer = build_gateway_layer(
            name, config, k8s_opts, self.serving, self.gcp.model_armor_templates, network=self.gcp.network
        )
        self.gateways = self.gateway_layer.gateways
        self._exports.update(self.gateway_layer.exports)

        self.register_outputs(dict(self._exports))

    def exports(self) -> dict[str, Any]:
        return dict(self._exports)
