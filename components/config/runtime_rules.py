"""What each runtime's API needs from a pool and a route, and what GKE's gateway cannot do for it.

Checked with the other gateway rules (``routing.gateway_rules``), before anything renders; every
message starts with the YAML path it is about.

Facts behind the rules:

- An InferencePool has one ``appProtocol`` and its target ports share it (GIE v1.4 API), so a
  runtime with a REST and a gRPC API (Caikit, KServe v2) is served by one pool per protocol
  (``pools[].protocol``); a route's backends all speak one protocol.
- GKE's gateway classes do not implement GRPCRoute (GoogleCloudPlatform/gke-gateway-api#31,
  open). gRPC reaches a pool through an HTTPRoute matching the exact ``/<package.Service>/<Method>``
  paths over HTTP/2 to the InferencePool (``appProtocol: kubernetes.io/h2c``), the path the
  gateway-api-inference-extension getting-started guide tested on ``gke-l7-regional-external-managed``.
- gRPC clients build the path from the service and method name: no ``/invoke`` prefix, and no
  ``/served-models/<name>/invocations`` path (gRPC served models are addressed with the
  ``x-deployed-model-id`` header).
- Model Armor on GKE's gateway screens only OpenAI-style operations (chat completions,
  completions, ...); Caikit, TGIS and KServe v2 requests would pass unscreened.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..catalog.runtime_preset import RuntimePreset, for_protocol
from ..catalog.runtimes import resolve_preset

if TYPE_CHECKING:
    from .stack import StackConfig

GRPC_ROUTE_UNSUPPORTED = (
    "GRPCRoute is not implemented by GKE's gateway classes (gke-l7-regional-external-managed, gke-l7-rilb; "
    "GoogleCloudPlatform/gke-gateway-api#31); gRPC pools are routed with an HTTPRoute matching "
    "/<package.Service>/<Method> over HTTP/2 (InferencePool appProtocol kubernetes.io/h2c): remove kind"
)


def pool_preset(cfg: StackConfig, pool_name: str) -> RuntimePreset | None:
    """The runtime preset as the pool serves it (its protocol applied), or None when the pool or
    its model server is unknown or the protocol impossible (reported by ``runtime_problems``)."""
    pool = next((p for p in cfg.pools if p.name == pool_name), None)
    if pool is not None and pool.model_server is None:
        from ..catalog.providers import egress_preset
        from .external import external_pool_of

        model = external_pool_of(cfg, pool_name)  # the egress proxy of the pool's external model
        return egress_preset(model.external.task) if model is not None else None
    server = next((s for s in cfg.model_servers if pool is not None and s.name == pool.model_server), None)
    if server is None:
        return None
    try:
        return for_protocol(resolve_preset(server), pool.protocol)
    except ValueError:
        return None


def invocation_path(cfg: StackConfig, route, pool_name: str) -> str | None:
    """Where ``/served-models/<name>/invocations`` lands for a target of this pool: the route's
    ``invocations_path``, else the runtime's (``{model}``: the target model); None for gRPC."""
    preset = pool_preset(cfg, pool_name)
    if preset is None or preset.protocol == "grpc":
        return None
    return route.invocations_path or preset.invocations_path


def invocation_paths(cfg: StackConfig, route) -> dict[str, str | None]:
    """``invocation_path`` for each pool of the route (what the route builder renders)."""
    return {p: invocation_path(cfg, route, p) for p in route.pools}


def _pool_problems(cfg: StackConfig) -> list[str]:
    problems = []
    servers = {s.name: (i, s) for i, s in enumerate(cfg.model_servers)}
    for i, pool in enumerate(cfg.pools):
        if pool.model_server not in servers:
            continue
        j, server = servers[pool.model_server]
        preset = resolve_preset(server)
        protocol = pool.protocol or preset.protocol
        other = "http" if protocol == "grpc" else "grpc"
        if protocol == "grpc" and preset.grpc_port is None:
            problems.append(
                f"pools[{i}].protocol: 'grpc' but runtime {preset.name!r} (model_servers[{j}]) has no gRPC port; "
                f"use protocol: http or set model_servers[{j}].runtime_overrides.grpc_port"
            )
        elif not preset.routes_for(protocol):
            problems.append(
                f"pools[{i}].protocol: runtime {preset.name!r} has no {protocol} client API (it serves "
                f"{', '.join(r.path for r in preset.routes_for(other)) or 'nothing'}); use protocol: {other}"
            )
    return problems


def _route_problems(cfg: StackConfig, guarded: set[str]) -> list[str]:
    problems = []
    for gi, g in enumerate(cfg.gateways):
        for ri, route in enumerate(g.routes):
            at = f"gateways[{gi}].routes[{ri}]"
            if route.kind == "GRPCRoute":
                problems.append(f"{at}.kind: {GRPC_ROUTE_UNSUPPORTED}")
            presets = {p: pool_preset(cfg, p) for p in route.pools}
            protocols = {p: pr.protocol for p, pr in presets.items() if pr is not None}
            if len(set(protocols.values())) > 1:
                listed = ", ".join(f"{p} ({proto})" for p, proto in protocols.items())
                problems.append(
                    f"{at}.backends: the pools speak different protocols ({listed}); an HTTPRoute's backends must all "
                    "be http or all grpc: use one route per protocol"
                )
            grpc = [p for p, proto in protocols.items() if proto == "grpc"]
            if grpc and route.shape == "invoke":
                problems.append(
                    f"{at}.{'base_path' if route.base_path else 'invoke_route_prefix'}: pool {grpc[0]!r} serves gRPC, whose "
                    f"clients call /<package.Service>/<Method> and cannot add an {route.mount} prefix; route gRPC pools with "
                    "a path_prefix route"
                )
            if grpc and route.invocations_path is not None:
                problems.append(
                    f"{at}.invocations_path: pool {grpc[0]!r} serves gRPC; its served models are addressed with the "
                    "x-deployed-model-id header, not a /served-models/<name>/invocations path: remove invocations_path"
                )
            if g.name in guarded:
                unscreened = sorted({f"{pr.name} ({pr.api}, {pr.protocol})" for pr in presets.values()
                                     if pr is not None and pr.api != "openai"})
                if unscreened:
                    problems.append(
                        f"gateways[{gi}].model_armor: route {route.name!r} reaches {', '.join(unscreened)}; Model Armor on "
                        "GKE's gateway screens only OpenAI-style requests, so these would pass unscreened. Set "
                        f"gateways[{gi}].model_armor: false, or serve this route from a gateway without Model Armor"
                    )
    return problems


def runtime_problems(cfg: StackConfig) -> list[str]:
    from .routing import guarded_gateways

    problems = _pool_problems(cfg)
    if problems:
        return problems
    return _route_problems(cfg, set(guarded_gateways(cfg.gateways, cfg.model_armor)))

