"""InferencePlatform: composes every component from one validated StackConfig.

Order (each step depends on the ones before it): APIs -> network -> GKE cluster -> node pools ->
picker image -> Model Armor templates -> Kubernetes provider -> per pool: model servers,
InferencePool + picker, routing objects -> gateways, routes, GKE policies, Model Armor
extension -> observability.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from .config import StackConfig


class InferencePlatform(pulumi.ComponentResource):
    """The whole platform for one stack."""

    def __init__(self, name: str, config: StackConfig, opts: pulumi.ResourceOptions | None = None):
        super().__init__("inference-gateway:platform:InferencePlatform", name, None, opts)
        self.config = config
        self._exports: dict[str, Any] = {
            "project": config.project,
            "region": config.region,
            "clusterName": config.cluster_name,
        }
        child = pulumi.ResourceOptions(parent=self)

        # --- GCP infrastructure (issue: GCP infrastructure components) ---------------------------
        # Provides: kubeconfig (secret Output[str]), picker_image (Output[str] image ref by digest),
        # model_armor_templates {template id -> Output[str] full name}, cluster_ready (resources the
        # Kubernetes objects must wait for).
        from .gcp_infrastructure import build_gcp_infrastructure

        self.gcp = build_gcp_infrastructure(name, config, child)
        kubeconfig: pulumi.Input[str] = self.gcp.kubeconfig
        picker_image: pulumi.Input[str] = self.gcp.picker_image
        model_armor_templates: dict[str, pulumi.Input[str]] = self.gcp.model_armor_templates
        cluster_ready: list[pulumi.Resource] = self.gcp.cluster_ready
        self._exports.update(self.gcp.exports)
        # --- end GCP infrastructure ---

        self.k8s_provider = k8s.Provider(
            f"{name}-gke",
            kubeconfig=kubeconfig,
            enable_server_side_apply=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=cluster_ready),
        )
        k8s_opts = pulumi.ResourceOptions(parent=self, provider=self.k8s_provider)

        # --- Kubernetes serving (issue: serving components) --------------------------------------
        # Uses: k8s_opts, picker_image. Provides: self.serving (Serving; .pools: pool name ->
        # PoolEndpoint with the InferencePool, picker Service and runtime preset).
        from .serving import Serving

        self.serving = Serving(f"{name}-serving", config, picker_image, opts=k8s_opts)
        self._exports.update(self.serving.exports())
        # --- end Kubernetes serving ---

        # --- Gateways, routes, policies, observability (issue: gateways and routes) --------------
        # Uses: k8s_opts, self.serving, model_armor_templates. Provides: self.gateways, exports.
        from .gateways import build_gateway_layer

        self.gateway_layer = build_gateway_layer(
            name, config, k8s_opts, self.serving, model_armor_templates, network=getattr(getattr(self, "gcp", None), "network", None)
        )
        self.gateways = self.gateway_layer.gateways
        self._exports.update(self.gateway_layer.exports)
        # --- end gateways ---

        _ = (child, k8s_opts, picker_image, model_armor_templates)
        self.register_outputs({k: v for k, v in self._exports.items()})

    def exports(self) -> dict[str, Any]:
        return dict(self._exports)
