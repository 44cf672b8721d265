"""InferencePool: the pool (inference.networking.k8s.io/v1) plus its endpoint picker.

Creates the InferencePool selecting the model server's pods, and the picker ``<pool>-epp``:
ConfigMap (picker.yaml), ServiceAccount, Role + RoleBinding, Deployment, Service, and the API
keys Secret when API keys are on. Manifests come from builders/inference_pool.py. No
PodDisruptionBudget: with leader election only the leader is Ready, so any budget would forbid
evicting it and block node drains.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from .builders import inference_pool as b
from .builders.external_model import egress_name
from .catalog.runtime_preset import RuntimePreset
from .config.serving import InferencePoolConfig, ModelServerConfig, ServedModelConfig


@dataclass(frozen=True)
class InferencePoolArgs:
    pool: InferencePoolConfig
    server: ModelServerConfig | None
    """None for an external model's pool: it selects the model's egress proxy pods."""
    preset: RuntimePreset
    models: list[ServedModelConfig]
    namespace: str
    picker_image: pulumi.Input[str]
    api_keys: Any = None
    """The secret config value ``apiKeys`` (Pulumi secret Output) when the pool uses API keys."""
    crds: list[pulumi.Resource] = field(default_factory=list)
    """CRDs the InferencePool needs to exist first."""


class InferencePool(pulumi.ComponentResource):
    def __init__(self, name: str, args: InferencePoolArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("inference-gateway:serving:InferencePool", name, None, opts)
        pool, ns = args.pool, args.namespace
        child = pulumi.ResourceOptions(parent=self)
        self.name = pool.name
        self.picker_service_name = b.picker_name(pool.name)
        self.picker_config = b.picker_config(pool, args.server, args.preset, args.models)

        selected = args.server.name if args.server is not None else egress_name(pool.name)
        obj = b.inference_pool(pool, selected, args.preset, ns)
        self.pool = k8s.apiextensions.CustomResource(
            pool.name,
            api_version=obj["apiVersion"],
            kind=obj["kind"],
            metadata=obj["metadata"],
            spec=obj["spec"],
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.crds)),
        )

        epp = b.picker_name(pool.name)
        cm = b.picker_configmap(pool, self.picker_config, ns)
        config_map = k8s.core.v1.ConfigMap(f"{epp}-config", metadata=cm["metadata"], data=cm["data"], opts=child)
        sa = b.picker_service_account(pool, ns)
        account = k8s.core.v1.ServiceAccount(f"{epp}-sa", metadata=sa["metadata"], opts=child)
        role = b.picker_role(pool, ns)
        k8s_role = k8s.rbac.v1.Role(f"{epp}-role", metadata=role["metadata"], rules=role["rules"], opts=child)
        rb = b.picker_role_binding(pool, ns)
        binding = k8s.rbac.v1.RoleBinding(
            f"{epp}-rolebinding", metadata=rb["metadata"], role_ref=rb["roleRef"], subjects=rb["subjects"], opts=child
        )
        deps: list[pulumi.Resource] = [config_map, account, k8s_role, binding]
        if pool.picker.api_keys:
            if args.api_keys is None:
                raise pulumi.RunError(
                    f"pools: {pool.name!r} sets picker.api_keys but the secret config value apiKeys is not set; "
                    "run `pulumi config set --secret apiKeys <yaml: sha256 hex -> user>`"
                )
            sec = b.api_keys_secret(pool, ns, pulumi.Output.secret(args.api_keys))
            deps.append(
                k8s.core.v1.Secret(
                    f"{epp}-api-keys",
                    metadata=sec["metadata"],
                    type=sec["type"],
                    string_data=sec["stringData"],
                    opts=child,
                )
            )
        dep = b.picker_deployment(pool, ns, args.picker_image, self.picker_config)
        self.picker = k8s.apps.v1.Deployment(
            epp, metadata=dep["metadata"], spec=dep["spec"], opts=pulumi.ResourceOptions(parent=self, depends_on=deps)
        )
        svc = b.picker_service(pool, ns)
        self.service = k8s.core.v1.Service(epp, metadata=svc["metadata"], spec=svc["spec"], opts=child)
        self.register_outputs({"pool": pool.name, "pickerService": self.picker_service_name})
