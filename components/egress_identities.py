"""EgressIdentities: the Google identities of external models whose provider key is in Secret
Manager (the GCP half of components/external_model.py).

Per such model: a service account that may read that one secret version's secret
(``roles/secretmanager.secretAccessor`` on the secret, global or regional) and nothing else,
and the Workload Identity binding that lets the egress proxy's Kubernetes service account
(``<pool>-egress`` in the stack's namespace) act as it, so GKE's Secret Manager add-on mounts
the key with the pod's own identity. Keys from ``providerKeys`` need no identity.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_gcp as gcp

from .builders.external_model import egress_name
from .config import StackConfig
from .model_server import gsa_account_id


@dataclass(frozen=True)
class EgressIdentitiesArgs:
    config: StackConfig
    depends_on: list[pulumi.Resource] = field(default_factory=list)
    """The iam and secretmanager APIs."""


class EgressIdentities(pulumi.ComponentResource):
    emails: dict[str, pulumi.Output[str]]
    """Pool of an external model -> its proxy's service account email."""
    ready: list[pulumi.Resource]
    """The Workload Identity bindings: the proxy's pods need them to mount the key."""

    def __init__(self, name: str, args: EgressIdentitiesArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("inference-gateway:gcp:EgressIdentities", name, None, opts)
        cfg = args.config
        child = pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on))
        self.emails, self.ready = {}, []
        for m in cfg.models:
            if m.external is None or m.external.secret.kind != "secret-manager":
                continue
            ref, egress = m.external.secret, egress_name(m.pool)
            gsa = gcp.serviceaccount.Account(
                f"{egress}-gsa", account_id=gsa_account_id(egress), project=cfg.project,
                display_name=f"Egress proxy {egress} (reads {ref.secret})", opts=child)
            member = gsa.email.apply(lambda e: f"serviceAccount:{e}")
            if ref.location:
                gcp.secretmanager.RegionalSecretIamMember(
                    f"{egress}-secret-reader", project=ref.project, location=ref.location, secret_id=ref.secret,
                    role="roles/secretmanager.secretAccessor", member=member, opts=child)
            else:
                gcp.secretmanager.SecretIamMember(
                    f"{egress}-secret-reader", project=ref.project, secret_id=ref.secret,
                    role="roles/secretmanager.secretAccessor", member=member, opts=child)
            self.ready.append(gcp.serviceaccount.IAMMember(
                f"{egress}-workload-identity", service_account_id=gsa.name, role="roles/iam.workloadIdentityUser",
                member=f"serviceAccount:{cfg.project}.svc.id.goog[{cfg.namespace}/{egress}]", opts=child))
            self.emails[m.pool] = gsa.email
        self.register_outputs({"emails": self.emails})
