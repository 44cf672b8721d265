"""Serving: everything Kubernetes-side that serves models, composed from one StackConfig.

CRDs the cluster lacks -> Hugging Face token Secret -> per model server a ModelServer ->
per pool an InferencePool (+ picker) and its ModelRouting objects.

For the gateway side, ``pools`` maps each pool name to a ``PoolEndpoint``: the InferencePool to
reference from HTTPRoutes, the picker Service, and the runtime preset (routes, health path,
port, protocol) of the model server behind it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from .autoscaling import Autoscaling, AutoscalingArgs, autoscaled_servers
from .builders import crds as crd_builders
from .builders.inference_pool import GRPC_PORT, POOL_GROUP
from .builders.model_server import hf_token_secret
from .builders.external_model import egress_name
from .catalog.providers import egress_preset
from .catalog.runtime_preset import RuntimePreset, for_protocol
from .config import StackConfig
from .external_model import ExternalModel, ExternalModelArgs
from .inference_pool import InferencePool, InferencePoolArgs
from .model_routing import ModelRouting, ModelRoutingArgs
from .model_server import ModelServer, ModelServerArgs
from .secrets import StackSecrets


@dataclass(frozen=True)
class PoolEndpoint:
    """What the gateway needs to route to one pool."""

    name: str
    """InferencePool name (HTTPRoute backendRef: group inference.networking.k8s.io, kind InferencePool)."""
    namespace: str
    group: str
    picker_service: str
    """The picker's ClusterIP Service (port ``picker_port``, gRPC ext_proc)."""
    picker_port: int
    model_server: str
    preset: RuntimePreset
    """Routes (``preset.routes``), health path, protocol of the model server runtime."""
    port: int
    """Target port on the model server pods."""
    health_path: str
    protocol: str
    app_protocol: str
    served_models: tuple[str, ...]
    resource: pulumi.Resource
    """The InferencePool custom resource (depends_on for routes and policies)."""


class Serving(pulumi.ComponentResource):
    def __init__(self, name: str, config: StackConfig, picker_image: pulumi.Input[str], opts: pulumi.ResourceOptions | None = None,
                 secrets: StackSecrets | None = None, egress_identities=None):
        """``egress_identities``: components/egress_identities.py (external models' Secret Manager readers)."""
        super().__init__("inference-gateway:serving:Serving", name, None, opts)
        secrets = secrets if secrets is not None else StackSecrets.from_config()
        ns = config.namespace
        child = pulumi.ResourceOptions(parent=self)

        # -- CRDs the cluster lacks -------------------------------------------------------------------
        self.crds: dict[str, k8s.apiextensions.v1.CustomResourceDefinition] = {}
        cluster = config.cluster
        installed = cluster.existing.installed_crds if cluster.existing is not None else ()
        for crd in crd_builders.crds_to_install(cluster.min_master_version, gke=cluster.gke, installed=installed):
            self.crds[crd["spec"]["names"]["kind"]] = k8s.apiextensions.v1.CustomResourceDefinition(
                crd["metadata"]["name"], metadata=crd["metadata"], spec=crd["spec"], opts=child
            )
        pool_crds = [self.crds[k] for k in ("InferencePool",) if k in self.crds]
        llmd_crds = [self.crds[k] for k in ("InferenceObjective", "InferenceModelRewrite") if k in self.crds]

        # -- Hugging Face token: one Secret per stack, from the secret config value hfToken ----------
        self.hf_secret_name: str | None = None
        users = [s for s in config.model_servers if s.hf_token]
        hf_deps: list[pulumi.Resource] = []
        if users:
            token = secrets.get("hfToken")
            if token is None:
                i = config.model_servers.index(users[0])
                # RunError: Pulumi prints the message without a traceback (like invalid config).
                raise pulumi.RunError(
                    f"model_servers[{i}].hf_token: true needs the secret config value hfToken; run "
                    "`pulumi config set --secret hfToken <token>` or set hf_token: false"
                )
            self.hf_secret_name = f"{config.name_prefix}-hf-token"
            # The leaf stays a Pulumi secret: state and previews never hold the plaintext token.
            sec = hf_token_secret(self.hf_secret_name, ns, pulumi.Output.secret(token))
            hf_deps.append(
                k8s.core.v1.Secret(
                    self.hf_secret_name,
                    metadata=sec["metadata"],
                    type=sec["type"],
                    string_data=sec["stringData"],
                    opts=child,
                )
            )

        # -- model servers ----------------------------------------------------------------------------
        self.model_servers: dict[str, ModelServer] = {}
        for server in config.model_servers:
            node_pool = config.node_pool_for(server)  # None only off GKE (StackConfig rules)
            self.model_servers[server.name] = ModelServer(
                server.name,
                ModelServerArgs(
                    server=server,
                    namespace=ns,
                    accelerator=node_pool.machine.accelerator if node_pool is not None else None,
                    project=config.project,
                    hf_secret_name=self.hf_secret_name if server.hf_token else None,
                ),
                opts=pulumi.ResourceOptions(parent=self, depends_on=hf_deps),
            )

        # -- autoscaling: KEDA ScaledObjects for autoscaled servers (autoscaling.py) -------------------
        self.autoscaling = None
        if autoscaled_servers(config):
            self.autoscaling = Autoscaling(
                f"{name}-autoscaling",
                AutoscalingArgs(stack=config, deployments={k: v.deployment for k, v in self.model_servers.items()}),
                opts=child,
            )

        # -- pools, pickers, routing objects ----------------------------------------------------------
        api_keys = secrets.get("apiKeys") if any(p.picker.api_keys for p in config.pools) else None
        self.pools: dict[str, PoolEndpoint] = {}
        self.inference_pools: dict[str, InferencePool] = {}
        self.routing: dict[str, ModelRouting] = {}
        self.external_models: dict[str, ExternalModel] = {}
        for pool in config.pools:
            models = config.models_of_pool(pool.name)
            if pool.model_server is None:  # an external model's pool: its egress proxy (external_model.py)
                server, preset = None, egress_preset(models[0].external.task)
            else:
                server = config.model_server(pool.model_server)
                preset = for_protocol(self.model_servers[server.name].preset, pool.protocol)  # REST or gRPC
            ip = InferencePool(
                pool.name,
                InferencePoolArgs(
                    pool=pool, server=server, preset=preset, models=models, namespace=ns,
                    picker_image=picker_image, api_keys=api_keys, crds=pool_crds,
                ),
                opts=child,
            )
            self.inference_pools[pool.name] = ip
            if server is None:
                self.external_models[pool.name] = ExternalModel(
                    egress_name(pool.name),
                    ExternalModelArgs(model=models[0], index=config.models.index(models[0]), namespace=ns,
                                      project=config.project, proxy_cidrs=[p.cidr for p in config.proxy_only_subnets],
                                      secrets=secrets, routing_deps=[*llmd_crds, ip.pool],
                                      gsa_email=egress_identities.emails.get(pool.name) if egress_identities else None),
                    opts=pulumi.ResourceOptions(parent=self, depends_on=egress_identities.ready if egress_identities else []),
                )
            self.routing[pool.name] = ModelRouting(
                f"{pool.name}-models",
                ModelRoutingArgs(models=models, namespace=ns, depends_on=[*llmd_crds, ip.pool]),
                opts=child,
            )
            self.pools[pool.name] = PoolEndpoint(
                name=pool.name,
                namespace=ns,
                group=POOL_GROUP,
                picker_service=ip.picker_service_name,
                picker_port=GRPC_PORT,
                model_server=server.name if server is not None else egress_name(pool.name),
                preset=preset,
                port=preset.target_port,
                health_path=preset.health_path,
                protocol=preset.protocol,
                app_protocol=preset.app_protocol,
                served_models=tuple(m.name for m in models),
                resource=ip.pool,
            )
        self._endpoints = self._endpoint_outputs(config)
        self.register_outputs({"pools": list(self.pools), "pickerServices": {k: v.picker_service for k, v in self.pools.items()}})

    def exports(self) -> dict:
        return {
            "inferencePools": list(self.pools),
            "pickerServices": {k: v.picker_service for k, v in self.pools.items()},
            "endpoints": self._endpoints,
        }

    def _endpoint_outputs(self, config: StackConfig) -> dict:
        """Seed 004's endpoint view at deploy time: per served model its kind, pool, tags, served
        entities and ``state.ready`` from its pool's Deployment once Pulumi waited for it (READY
        when a pod is ready). `igw status --stack S` reads the live state."""
        out = {}
        for m in config.models:
            pool = config.pool(m.pool)
            dep = (self.external_models[m.pool].deployment if pool.model_server is None
                   else self.model_servers[pool.model_server].deployment)
            ready = dep.status.apply(lambda st: "READY" if st is not None and (st.ready_replicas or 0) >= 1 else "NOT_READY")
            entry: dict = {"kind": "external" if m.external else "self-hosted", "pool": m.pool, "criticality": m.criticality,
                           "tags": dict(m.tags), "state": {"ready": ready}}
            if m.external is not None:
                entry["externalModel"] = {"provider": m.external.provider, "name": m.external.name,
                                          "task": m.external.task, "apiBase": m.external.base_url}
            else:
                entry["servedEntities"] = [{"name": t.name or t.model, "entityName": t.model, "trafficPercentage": t.weight}
                                           for t in m.targets] or [{"name": m.name, "entityName": m.name, "trafficPercentage": 100}]
            out[m.name] = entry
        return out
