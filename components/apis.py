"""Apis: the Google APIs the platform needs, enabled with gcp.projects.Service."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from .config import ApisConfig

SERVICES = (
    "container.googleapis.com",
    "compute.googleapis.com",
    "networkservices.googleapis.com",
    "modelarmor.googleapis.com",
    "artifactregistry.googleapis.com",
    "iam.googleapis.com",
    "monitoring.googleapis.com",
    "logging.googleapis.com",
)
"""GKE, VPC, the load balancer's service extensions, Model Armor, the picker's registry, node
service accounts, GPU metrics and logs. (gkehub/autoscaling only matter for multi-cluster IGW.)"""


@dataclass(frozen=True)
class ApisArgs:
    project: str
    config: ApisConfig
    extra_services: tuple[str, ...] = ()
    """More APIs the stack's config needs (secretmanager for an external model's Secret Manager key)."""


class Apis(pulumi.ComponentResource):
    """Enables the platform's APIs on the project; other components depend on `services`.

    On destroy the APIs stay enabled by default (`apis.disable_on_destroy: false`): disabling
    compute or container would break every other workload in the project, and disabling an API
    that still has resources fails anyway. Set it true only for a project that exists for this
    stack alone. With `apis.enable: false` (a platform team manages APIs) nothing is created.
    """

    services: dict[str, gcp.projects.Service]
    """API name (e.g. container.googleapis.com) -> its Service; empty with apis.enable false."""

    def after(self, *apis: str) -> list[pulumi.Resource]:
        """The Services for short API names ("container", "compute"), to use in depends_on."""
        return [self.services[f"{a}.googleapis.com"] for a in apis if f"{a}.googleapis.com" in self.services]

    def __init__(self, name: str, args: ApisArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("inference-gateway:gcp:Apis", name, None, opts)
        self.services = {}
        if args.config.enable:
            for service in (*SERVICES, *args.extra_services):
                self.services[service] = gcp.projects.Service(
                    f"{name}-{service.split('.')[0]}",
                    project=args.project,
                    service=service,
                    disable_on_destroy=args.config.disable_on_destroy,
                    disable_dependent_services=False,
                    opts=pulumi.ResourceOptions(parent=self),
                )
        self.register_outputs({"services": list(self.services)})
