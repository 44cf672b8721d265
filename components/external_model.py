"""ExternalModel: the egress proxy that serves one external model (seed 004) inside the cluster.

Creates, from builders/egress_proxy.py and builders/external_model.py: the proxy's ConfigMap
(Envoy config), the provider key (a Kubernetes Secret from the Pulumi secret ``providerKeys``,
or a SecretProviderClass for a Secret Manager version, mounted with the Workload Identity that
components/egress_identities.py set up), the ServiceAccount, the Deployment, a PodDisruptionBudget,
the NetworkPolicy and FQDNNetworkPolicy (egress to the provider's host only) and the model
rewrite (endpoint name -> the provider's model name). The InferencePool and its picker are
created by Serving like any pool's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from .builders import egress_proxy as proxy
from .builders import external_model as b
from .config.external import PROVIDER_KEYS, SecretRef
from .config.serving import ServedModelConfig
from .secrets import StackSecrets


@dataclass(frozen=True)
class ExternalModelArgs:
    model: ServedModelConfig
    index: int
    """The model's position in ``models[]`` (error messages name the YAML path)."""
    namespace: str
    project: str
    proxy_cidrs: list[str]
    secrets: StackSecrets
    routing_deps: list[pulumi.Resource] = field(default_factory=list)
    """What the model rewrite needs first (the llm-d CRDs, the InferencePool)."""
    gsa_email: pulumi.Input[str] | None = None
    """A Secret Manager key: the proxy's Google service account (components/egress_identities.py)."""


def provider_key(raw: Any, ref: SecretRef, path: str) -> str:
    """The key at ``providerKeys.<scope>.<key>`` of the secret config value (a JSON object, or the
    object itself). Raises with the fix, never the value."""
    keys = json.loads(raw) if isinstance(raw, str) else raw
    value = (keys or {}).get(ref.scope, {}).get(ref.key) if isinstance(keys, dict) else None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(
            f"{path}: {PROVIDER_KEYS}.{ref.scope}.{ref.key} is not set; run `pulumi config set --secret --path "
            f"'inference-gateway:{ref.config_path}' <provider key>`"
        )
    return value.strip()  # a trailing newline would end up in the Authorization header


def _cr(name: str, manifest: dict[str, Any], opts: pulumi.ResourceOptions) -> k8s.apiextensions.CustomResource:
    extra = {k: v for k, v in manifest.items() if k not in ("apiVersion", "kind", "metadata")}
    return k8s.apiextensions.CustomResource(name, api_version=manifest["apiVersion"], kind=manifest["kind"],
                                            metadata=manifest["metadata"], opts=opts, **extra)


class ExternalModel(pulumi.ComponentResource):
    def __init__(self, name: str, args: ExternalModelArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("inference-gateway:serving:ExternalModel", name, None, opts)
        model, ns = args.model, args.namespace
        ext, pool = model.external, model.pool
        assert ext is not None
        child = pulumi.ResourceOptions(parent=self)
        egress = b.egress_name(pool)
        path = f"models[{args.index}].external.api_key_secret"

        cm = proxy.configmap(egress, ns, b.egress_labels(pool), model.name, ext)
        deps: list[pulumi.Resource] = [k8s.core.v1.ConfigMap(f"{egress}-config", metadata=cm["metadata"], data=cm["data"], opts=child)]

        ref = ext.secret
        gsa_email = None
        if ref.kind == "pulumi":
            keys = args.secrets.get(PROVIDER_KEYS)
            if keys is None:
                raise pulumi.RunError(
                    f"{path}: {ext.api_key_secret} needs the secret config value {ref.config_path}; run "
                    f"`pulumi config set --secret --path 'inference-gateway:{ref.config_path}' <provider key>`"
                )
            value = pulumi.Output.secret(keys).apply(lambda raw: provider_key(raw, ref, path))
            sec = b.key_secret(pool, ns, value)
            deps.append(k8s.core.v1.Secret(f"{egress}-key", metadata=sec["metadata"], type=sec["type"],
                                           string_data=sec["stringData"], opts=child))
        else:
            # GKE's Secret Manager add-on mounts the version with the pod's Workload Identity
            # (the service account EgressIdentities made for this proxy, a GCP component).
            if args.gsa_email is None:
                raise pulumi.RunError(f"{path}: a Secret Manager key needs the proxy's identity (EgressIdentities)")
            deps.append(_cr(f"{egress}-key", b.secret_provider_class(pool, ns, ref.resource), child))
            gsa_email = args.gsa_email
        sa = b.service_account(pool, ns, gsa_email)
        deps.append(k8s.core.v1.ServiceAccount(f"{egress}-sa", metadata=sa["metadata"],
                                               automount_service_account_token=False, opts=child))

        dep = b.deployment(model, ns, proxy.config_digest(cm["data"]))
        self.deployment = k8s.apps.v1.Deployment(egress, metadata=dep["metadata"], spec=dep["spec"],
                                                 opts=pulumi.ResourceOptions(parent=self, depends_on=deps))
        pdb = b.pod_disruption_budget(pool, ns, ext.replicas)
        if pdb is not None:
            k8s.policy.v1.PodDisruptionBudget(f"{egress}-pdb", metadata=pdb["metadata"], spec=pdb["spec"], opts=child)
        np = b.network_policy(pool, ns, args.proxy_cidrs, ext)
        k8s.networking.v1.NetworkPolicy(f"{egress}-network-policy", metadata=np["metadata"], spec=np["spec"], opts=child)
        fqdn = b.fqdn_network_policy(pool, ns, ext)
        if fqdn is not None:
            _cr(f"{egress}-provider-egress", fqdn, child)
        self.rewrite = None
        rewrite = b.model_rewrite(model, ns)
        if rewrite is not None:
            self.rewrite = _cr(f"{egress}-rewrite", rewrite,
                               pulumi.ResourceOptions(parent=self, depends_on=list(args.routing_deps)))
        self.register_outputs({"deployment": egress})
