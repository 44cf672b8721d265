"""ModelArmor: Model Armor templates (+ optional floor setting) and the IAM the load balancer's
callout needs to use them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import pulumi
import pulumi_gcp as gcp

from .builders import model_armor_templates as b
from .config import ModelArmorConfig, StackConfig


@dataclass(frozen=True)
class ModelArmorArgs:
    config: StackConfig
    model_armor: ModelArmorConfig
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)
    """Usually the modelarmor API."""


class ModelArmor(pulumi.ComponentResource):
    """One `gcp.modelarmor.Template` per configured template, in the stack's region (Model Armor is
    regional and the gateway's traffic extension calls `modelarmor.<region>.rep.googleapis.com`),
    an optional project floor setting from the first template's filters, and the roles the
    service-extension agent `service-<PROJECT_NUMBER>@gcp-sa-dep.iam.gserviceaccount.com` needs
    (calloutUser, user, serviceUsageConsumer).

    `templates` maps template id -> full name `projects/P/locations/L/templates/T`, the form the
    gateway's `model_armor_settings` uses.
    """

    templates: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, args: ModelArmorArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("inference-gateway:gcp:ModelArmor", name, None, opts)
        cfg = args.config
        ma = args.model_armor
        after_apis = pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on))
        self.templates = {}
        for t in ma.templates:
            template = gcp.modelarmor.Template(
                f"{name}-{t.id}",
                project=cfg.project,
                location=cfg.region,
                template_id=t.id,
                filter_config=b.filter_config(t),
                template_metadata=b.template_metadata(t),
                labels=dict(cfg.labels) or None,
                opts=after_apis,
            )
            self.templates[t.id] = template.id

        if ma.floor_setting and ma.templates:
            gcp.modelarmor.Floorsetting(
                f"{name}-floor",
                parent=f"projects/{cfg.project}",
                location="global",
                filter_config=b.filter_config(ma.templates[0]),
                enable_floor_setting_enforcement=True,
                opts=after_apis,
            )

        if ma.templates:
            number = gcp.organizations.get_project_output(
                project_id=cfg.project, opts=pulumi.InvokeOptions(parent=self)
            ).number
            member = number.apply(b.callout_member)
            for role in b.CALLOUT_ROLES:
                gcp.projects.IAMMember(
                    f"{name}-callout-{role.split('/')[1].replace('.', '-').lower()}",
                    project=cfg.project,
                    role=role,
                    member=member,
                    opts=after_apis,
                )
        self.register_outputs({"templates": self.templates})
