"""Gateway: one GKE Gateway with its address, routes, gateway policy and Model Armor extension.

Also `PoolPolicies` inputs (health probe per pool) and the adapters that read what the serving
and network components provide, falling back to config-derived values while those land.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s

from .builders import gateway as gw_builder
from .builders import model_armor_extension as armor
from .builders import routes as route_builder
from .builders.policies import HealthProbe
from .config import GatewayConfig, StackConfig
from .config.exposure import route_api_paths
from .config.runtime_rules import invocation_paths

LABELS = {"app.kubernetes.io/part-of": "inference-gateway", "app.kubernetes.io/managed-by": "pulumi"}


# -- adapters: switch to the serving / network components' values once they exist ----------------
def health_probe(cfg: StackConfig, pool: str) -> HealthProbe:
    """The runtime preset's HTTP port and health path for the pool's model server."""
    if cfg.pool(pool).model_server is None:  # an external model's egress proxy
        from .config.runtime_rules import pool_preset

        egress = pool_preset(cfg, pool)
        assert egress is not None
        return HealthProbe(port=egress.port, path=egress.health_path)
    server = cfg.model_server(cfg.pool(pool).model_server)
    try:
        from .catalog.runtimes import resolve_preset

        preset = resolve_preset(server)
        return HealthProbe(port=preset.port, path=preset.health_path)
    except (ImportError, AttributeError):  # runtime presets not available: vLLM defaults
        o = server.runtime_overrides
        return HealthProbe(port=o.port or 8000, path=o.health_path or "/health")


def model_server_metrics(cfg: StackConfig, server_name: str) -> tuple[int, str] | None:
    """(port, metrics path) of a model server, or None when its runtime exports no metrics."""
    server = cfg.model_server(server_name)
    try:
        from .catalog.runtimes import resolve_preset

        preset = resolve_preset(server)
        return (preset.port, preset.metrics_path) if preset.metrics_path else None
    except (ImportError, AttributeError):
        o = server.runtime_overrides
        return (o.port or 8000, o.metrics_path or "/metrics")


def node_subnetwork(cfg: StackConfig, network: Any) -> pulumi.Input[str]:
    """The node subnet internal gateway addresses are reserved in."""
    for attr in ("subnet_self_link", "node_subnet_self_link"):
        value = getattr(network, attr, None)
        if value is not None:
            return value
    subnet = getattr(network, "node_subnet", None)
    if subnet is not None and hasattr(subnet, "self_link"):
        return subnet.self_link
    try:
        from .builders.network import node_subnet_name

        name = node_subnet_name(cfg)
    except ImportError:
        name = cfg.network.existing_subnet or f"{cfg.name_prefix}-nodes-{cfg.region}"
    return f"projects/{cfg.project}/regions/{cfg.region}/subnetworks/{name}"


@dataclass
class GatewayArgs:
    config: GatewayConfig
    stack: StackConfig
    subnetwork: pulumi.Input[str] | None = None
    """Node subnet for an internal gateway's reserved address (create_address)."""
    model_armor_settings: pulumi.Input[str] | None = None
    """The JSON string for the Model Armor extension; None: this gateway is not guarded."""
    depends_on: list[pulumi.Resource] = field(default_factory=list)
    """What the routes need first (InferencePools, policies)."""


def _cr(name: str, manifest: Mapping[str, Any], opts: pulumi.ResourceOptions) -> k8s.apiextensions.CustomResource:
    extra = {k: v for k, v in manifest.items() if k not in ("apiVersion", "kind", "metadata")}
    return k8s.apiextensions.CustomResource(
        name, api_version=manifest["apiVersion"], kind=manifest["kind"], metadata=manifest["metadata"], opts=opts, **extra
    )


class Gateway(pulumi.ComponentResource):
    """A GKE Gateway (regional external or internal) and everything attached to it."""

    address: pulumi.Output[str] | None
    urls: pulumi.Output[dict[str, str]]

    def __init__(self, name: str, args: GatewayArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("inference-gateway:gateway:Gateway", name, None, opts)
        g, cfg = args.config, args.stack
        ns = cfg.namespace
        child = pulumi.ResourceOptions(parent=self)
        self.address_resource: gcp.compute.Address | None = None
        address_name = gw_builder.address_name(cfg.name_prefix, g)
        if g.create_address:
            internal = g.internal
            self.address_resource = gcp.compute.Address(
                f"{name}-ip",
                name=address_name,
                project=cfg.project,
                region=cfg.region,
                address_type="INTERNAL" if internal else "EXTERNAL",
                # One internal IP shared by the HTTP and HTTPS forwarding rules of the gateway.
                purpose="SHARED_LOADBALANCER_VIP" if internal else None,
                subnetwork=args.subnetwork if internal else None,
                network_tier=None if internal else "PREMIUM",
                labels={k.replace(".", "-").replace("/", "_"): v for k, v in {**cfg.labels, "gateway": g.name}.items()},
                description=f"Reserved address of the {g.name} inference gateway",
                opts=child,
            )
        gw_opts = pulumi.ResourceOptions(parent=self, depends_on=[r for r in [self.address_resource] if r])
        self.gateway = _cr(f"{name}", gw_builder.gateway_manifest(g, ns, address_name, LABELS), gw_opts)
        policy = gw_builder.gateway_policy_manifest(g, ns, LABELS)
        self.policy = _cr(f"{name}-policy", policy, pulumi.ResourceOptions(parent=self, depends_on=[self.gateway])) if policy else None

        route_opts = pulumi.ResourceOptions(parent=self, depends_on=[self.gateway, *args.depends_on])
        self.routes = {
            r.name: _cr(f"{name}-{r.name}", route_builder.httproute_manifest(
                g, r, cfg.models, ns, LABELS, api=[p.route for p in route_api_paths(cfg, r)],
                invocations=invocation_paths(cfg, r)), route_opts)
            for r in g.routes
        }
        self.model_armor = None
        if args.model_armor_settings is not None and cfg.model_armor is not None:
            manifest = armor.traffic_extension(g.name, ns, cfg.region, cfg.model_armor, args.model_armor_settings, LABELS)
            self.model_armor = _cr(f"{name}-model-armor", manifest, pulumi.ResourceOptions(parent=self, depends_on=[self.gateway]))

        if self.address_resource is not None:
            self.address = self.address_resource.address
        elif g.static_address:
            self.address = gcp.compute.get_address_output(name=g.static_address, region=cfg.region, project=cfg.project).address
        else:
            # Ephemeral: GKE assigns it; read it from the Gateway's status after `pulumi up`.
            self.address = None
        ip: pulumi.Input[str | None] = self.address
        self.urls = pulumi.Output.from_input(ip).apply(lambda a: gw_builder.gateway_urls(g, a or "${GATEWAY_IP}"))
        self.register_outputs({"address": self.address, "urls": self.urls})
