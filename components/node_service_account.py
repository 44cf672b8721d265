"""NodeServiceAccount: the least-privilege identity of every GKE node (system and GPU pools)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import pulumi
import pulumi_gcp as gcp

from .builders.gke import NODE_ROLES
from .catalog.names import node_service_account_id


@dataclass(frozen=True)
class NodeServiceAccountArgs:
    project: str
    name_prefix: str
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)
    """Usually the iam API."""


class NodeServiceAccount(pulumi.ComponentResource):
    """A service account `<name_prefix>-nodes` with only the roles nodes need (write logs and
    metrics, read monitoring, pull from Artifact Registry), instead of the Compute Engine default
    account (Editor). Workloads get their own identities through Workload Identity."""

    email: pulumi.Output[str]
    ready: list[pulumi.Resource]
    """The account and its role bindings: node pools wait for them."""

    def __init__(self, name: str, args: NodeServiceAccountArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("inference-gateway:gcp:NodeServiceAccount", name, None, opts)
        account = gcp.serviceaccount.Account(
            f"{name}",
            project=args.project,
            account_id=node_service_account_id(args.name_prefix),
            display_name=f"GKE nodes of {args.name_prefix} (inference-gateway)",
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)),
        )
        self.email = account.email
        self.ready = [account]
        for role in NODE_ROLES:
            self.ready.append(
                gcp.projects.IAMMember(
                    f"{name}-{role.split('/')[1].replace('.', '-').lower()}",
                    project=args.project,
                    role=role,
                    member=account.member,
                    opts=pulumi.ResourceOptions(parent=self),
                )
            )
        self.register_outputs({"email": self.email})
