"""InferencePlatform: composes every component from one validated StackConfig.

Order (each step depends on the ones before it): APIs -> network -> GKE cluster -> node pools ->
picker image -> Model Armor templates -> Kubernetes provider -> per pool: model servers,
InferencePool + picker, routing objects -> gateways, routes, GKE policies, Model Armor
extension -> observability.
"""

from __future__ import annotations

from typing import Any

import pulumi

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
        self.gcp = None
        # --- end GCP infrastructure ---

        # --- Kubernetes serving (issue: serving components) --------------------------------------
        self.serving = None
        # --- end Kubernetes serving ---

        # --- Gateways, routes, policies, observability (issue: gateways and routes) --------------
        self.gateways = None
        # --- end gateways ---

        _ = child
        self.register_outputs({k: v for k, v in self._exports.items()})

    def exports(self) -> dict[str, Any]:
        return dict(self._exports)
