"""The gateway layer of the platform: pool policies -> gateways (routes, Model Armor) -> observability.

`build_gateway_layer` is what `InferencePlatform` calls in its gateways section; it reads what
the serving and GCP components provide through small adapters so either can land first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import pulumi

from .builders import endpoints
from .builders import model_armor_extension as armor
from .config import StackConfig
from .config.routing import guarded_gateways
from .gateway import LABELS, Gateway, GatewayArgs, health_probe, model_server_metrics, node_subnetwork
from .observability import PICKER_METRICS_PORT, Observability, ObservabilityArgs, ScrapeTarget
from .pool_policies import PoolPolicies, PoolPoliciesArgs


def _model_server_labels(server: str) -> dict[str, str]:
    try:
        from .builders.model_server import pod_labels

        return pod_labels(server)
    except ImportError:
        return {"app": server}


def _picker_labels(pool: str) -> dict[str, str]:
    try:
        from .builders.inference_pool import picker_labels

        return picker_labels(pool)
    except ImportError:
        return {"inferencepool": f"{pool}-epp"}


def _pool_resources(serving: Any) -> list[pulumi.Resource]:
    pools = getattr(serving, "pools", None) or {}
    return [r for r in (getattr(p, "resource", None) for p in pools.values()) if isinstance(r, pulumi.Resource)]


@dataclass
class GatewayLayer:
    pool_policies: dict[str, PoolPolicies] = field(default_factory=dict)
    gateways: dict[str, Gateway] = field(default_factory=dict)
    observability: Observability | None = None
    exports: dict[str, Any] = field(default_factory=dict)


def build_gateway_layer(
    name: str,
    cfg: StackConfig,
    k8s_opts: pulumi.ResourceOptions,
    serving: Any,
    model_armor_templates: Mapping[str, pulumi.Input[str]],
    network: Any = None,
) -> GatewayLayer:
    layer = GatewayLayer()
    pool_deps = _pool_resources(serving)
    # HealthCheckPolicy and GCPBackendPolicy configure GKE's load balancer: none off GKE.
    for p in cfg.pools if cfg.cluster.gke else ():
        own = getattr((getattr(serving, "pools", None) or {}).get(p.name), "resource", None)
        layer.pool_policies[p.name] = PoolPolicies(
            f"{name}-{p.name}-policies",
            PoolPoliciesArgs(
                pool=p, namespace=cfg.namespace, probe=health_probe(cfg, p.name), labels=LABELS,
                depends_on=[own] if isinstance(own, pulumi.Resource) else [],
            ),
            opts=k8s_opts,
        )

    guarded = guarded_gateways(cfg.gateways, cfg.model_armor)
    settings: pulumi.Output[str] | None = None
    if guarded and cfg.model_armor is not None:
        ids = sorted({t for g in cfg.model_armor.guards for t in (g.prompt_template, g.response_template)})
        ma = cfg.model_armor
        settings = pulumi.Output.all(*[model_armor_templates[i] for i in ids]).apply(
            lambda names: armor.model_armor_settings(ma, dict(zip(ids, names)))
        )
    subnetwork = node_subnetwork(cfg, network)
    for g in cfg.gateways:
        layer.gateways[g.name] = Gateway(
            f"{name}-{g.name}",
            GatewayArgs(
                config=g,
                stack=cfg,
                subnetwork=subnetwork,
                model_armor_settings=settings if g.name in guarded else None,
                depends_on=[*pool_deps, *layer.pool_policies.values()],
            ),
            opts=k8s_opts,
        )

    if cfg.gateways or cfg.pools:
        servers = sorted({p.model_server for p in cfg.pools if p.model_server is not None})
        ms_targets = []
        for s in servers:
            metrics = model_server_metrics(cfg, s)
            if metrics is not None:
                ms_targets.append(ScrapeTarget(s, _model_server_labels(s), metrics[0], metrics[1]))
        picker_targets = [ScrapeTarget(f"{p.name}-epp", _picker_labels(p.name), PICKER_METRICS_PORT) for p in cfg.pools]
        layer.observability = Observability(
            f"{name}-observability",
            ObservabilityArgs(stack=cfg, model_servers=ms_targets, pickers=picker_targets),
            k8s_opts=k8s_opts,
            opts=pulumi.ResourceOptions(parent=k8s_opts.parent),
        )

    # -- outputs ----------------------------------------------------------------------------------
    _dashboard_export(layer, cfg)
    addresses = {n: gw.address for n, gw in layer.gateways.items() if gw.address is not None}
    names = list(addresses)
    ips = pulumi.Output.all(*addresses.values()).apply(
        lambda vals: {g.name: (dict(zip(names, vals)).get(g.name) or None) for g in cfg.gateways}
    )
    if not cfg.gateways:
        return layer
    layer.exports.update({
        "gatewayAddresses": ips.apply(lambda m: {g.name: m.get(g.name) or _address_hint(cfg, g) for g in cfg.gateways}),
        "gatewayUrls": pulumi.Output.all(**{n: gw.urls for n, gw in layer.gateways.items()}),
        "modelEndpoints": ips.apply(lambda m: endpoints.model_endpoints(cfg, m)),
        "servedModelEndpoints": ips.apply(lambda m: endpoints.served_model_endpoints(cfg, m)),
    })
    return layer


def _address_hint(cfg: StackConfig, g) -> str:
    """How to find a gateway's IP when it is not known at deploy time."""
    if g.static_address:
        return f"reserved address {g.static_address}: gcloud compute addresses describe {g.static_address} --region {cfg.region} --format='value(address)'"
    return f"assigned by GKE: kubectl get gateway/{g.name} -n {cfg.namespace} -o jsonpath='{{.status.addresses[0].value}}'"


def _dashboard_export(layer: GatewayLayer, cfg: StackConfig) -> None:
    if layer.observability is not None and layer.observability.dashboard is not None:
        layer.exports["dashboardUrl"] = layer.observability.dashboard.id.apply(
            lambda i: f"https://console.cloud.google.com/monitoring/dashboards/builder/{i.rsplit('/', 1)[-1]}?project={cfg.project}"
        )
