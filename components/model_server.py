"""ModelServer: one model-server Deployment (vLLM by default, seed 001) and what it needs.

Creates, in ``namespace``: the LoRA adapters ConfigMap (LoRA-enabled servers), the Deployment,
and, when ``gcs_bucket`` is set, a Workload Identity pair (KSA + GSA with read access to the
bucket) so the pods mount the bucket without keys. Manifests come from builders/model_server.py.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s

from .builders import model_server as b
from .builders.grace import termination_grace_period_seconds
from .catalog.runtime_preset import RuntimePreset
from .catalog.runtimes import resolve_preset
from .config.serving import ModelServerConfig


@dataclass(frozen=True)
class ModelServerArgs:
    server: ModelServerConfig
    namespace: str
    accelerator: str | None
    """``cloud.google.com/gke-accelerator`` of the server's node pool; None off GKE (no
    nodeSelector: the pods request nvidia.com/gpu and go to any GPU node)."""
    project: str
    hf_secret_name: str | None = None
    """The Secret holding the Hugging Face token (key ``token``), or None."""


def gsa_account_id(server_name: str) -> str:
    """A 6-30 character service account id derived from the server name."""
    base = f"ms-{server_name}"
    if len(base) <= 30:
        return base
    digest = hashlib.sha256(server_name.encode()).hexdigest()[:6]
    return f"{base[:23].rstrip('-')}-{digest}"


class ModelServer(pulumi.ComponentResource):
    def __init__(self, name: str, args: ModelServerArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("inference-gateway:serving:ModelServer", name, None, opts)
        server, ns = args.server, args.namespace
        child = pulumi.ResourceOptions(parent=self)
        self.preset: RuntimePreset = resolve_preset(server)
        self.name = server.name
        self.grace_period_seconds = termination_grace_period_seconds(
            server.drain.max_output_tokens,
            server.drain.time_per_output_token_ms,
            server.drain.prefill_overhead,
            server.drain.pre_stop_seconds,
            server.drain.safety_factor,
        )

        # -- identity: only when the pods read a bucket ------------------------------------------
        ksa_name = None
        self.gsa = None
        deps: list[pulumi.Resource] = []
        if server.gcs_bucket:
            ksa_name = server.name
            self.gsa = gcp.serviceaccount.Account(
                f"{server.name}-gsa",
                account_id=gsa_account_id(server.name),
                display_name=f"Model server {server.name} (reads gs://{server.gcs_bucket})",
                project=args.project,
                opts=child,
            )
            gcp.storage.BucketIAMMember(
                f"{server.name}-bucket-reader",
                bucket=server.gcs_bucket,
                role="roles/storage.objectViewer",
                member=self.gsa.member,
                opts=child,
            )
            binding = gcp.serviceaccount.IAMMember(
                f"{server.name}-workload-identity",
                service_account_id=self.gsa.name,
                role="roles/iam.workloadIdentityUser",
                member=f"serviceAccount:{args.project}.svc.id.goog[{ns}/{ksa_name}]",
                opts=child,
            )
            sa = b.service_account(ksa_name, ns, self.gsa.email)
            deps.append(
                k8s.core.v1.ServiceAccount(
                    f"{server.name}-ksa",
                    metadata=sa["metadata"],
                    automount_service_account_token=False,
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[binding]),
                )
            )

        # -- LoRA adapters: the only object that changes when adapters change ----------------------
        self.adapters = None
        if server.lora_enabled:
            cm = b.adapters_configmap(server, ns, self.preset)
            self.adapters = k8s.core.v1.ConfigMap(
                f"{server.name}-adapters", metadata=cm["metadata"], data=cm["data"], opts=child
            )
            deps.append(self.adapters)

        if self.preset.name == "openvino" and server.extra_models:
            cm = b.ovms_configmap(server, ns)
            deps.append(k8s.core.v1.ConfigMap(f"{server.name}-ovms-config", metadata=cm["metadata"], data=cm["data"], opts=child))

        dep = b.deployment(
            server,
            ns,
            self.preset,
            args.accelerator,
            self.grace_period_seconds,
            args.hf_secret_name,
            ksa_name,
        )
        self.deployment = k8s.apps.v1.Deployment(
            server.name,
            metadata=dep["metadata"],
            spec=dep["spec"],
            opts=pulumi.ResourceOptions(parent=self, depends_on=deps),
        )
        self.register_outputs({"deployment": self.deployment.metadata["name"]})
