"""What each gateway route exposes: one derivation for validation, the route builders and `igw validate`.

A route exposes the client API of the runtimes behind its pools (``RuntimePreset.routes``, with
``{model}`` expanded to the pools' client-facing model names) plus what the stack widens
explicitly (``gateways[].routes[].expose``). Nothing else of a model server is reachable through
a gateway. A widening, a runtime override or a route path that would reach one of a runtime's
internal endpoints (``RuntimePreset.internal``: adapter load/unload, metrics, cache reset,
sleep/wake, profiling, health) is an error, whatever the route shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

from ..catalog.runtime_preset import MODEL_PLACEHOLDER, Route
from ..catalog.runtimes import resolve_preset
from .runtime_rules import invocation_path, pool_preset

if TYPE_CHECKING:  # the schema modules import nothing from here
    from .routing import RouteConfig
    from .stack import StackConfig


@dataclass(frozen=True)
class ExposedPath:
    """One path match a route lets through to its pools; ``source`` says why (for `igw validate`)."""

    route: Route
    source: str
    """``runtime <name>`` or ``expose[<i>]``."""

    @property
    def path(self) -> str:
        return self.route.path

    @property
    def match(self) -> str:
        return self.route.match

    @property
    def protocol(self) -> str:
        return self.route.protocol


def _client_models(cfg: StackConfig, pools: Iterable[str]) -> list[str]:
    """The model names a path may carry (``{model}``): each client-facing model, then the models
    its traffic split sends to. A split rewrites a KServe v2 path to the target
    (``/v2/models/<target>/infer``) and the gateway routes the rewritten request again (the
    picker clears the route cache), so the targets' paths must be routable too; they are served
    models a client may also reach directly (seed 002)."""
    pool_set = set(pools)
    names = [m.name for m in cfg.models if m.pool in pool_set]
    names += [t.model for m in cfg.models if m.pool in pool_set for t in m.targets]
    return list(dict.fromkeys(names))


def _expand(route: Route, models: list[str]) -> list[Route]:
    if MODEL_PLACEHOLDER not in route.path:
        return [route]
    return [Route(route.path.replace(MODEL_PLACEHOLDER, m), route.match, route.protocol) for m in models]


def route_api_paths(cfg: StackConfig, route: RouteConfig) -> list[ExposedPath]:
    """Every path match the route may let through, before its shape narrows it (predict_route,
    path_prefix, invoke): the runtimes' client APIs, then the route's widening, deduplicated."""
    out: list[ExposedPath] = []
    seen: set[Route] = set()

    def add(r: Route, source: str) -> None:
        if r not in seen:
            seen.add(r)
            out.append(ExposedPath(r, source))

    for pool_name in route.pools:
        preset = pool_preset(cfg, pool_name)
        if preset is None:
            continue
        for r in preset.routes_for(preset.protocol):  # the pool's protocol only (one appProtocol per pool)
            for e in _expand(r, _client_models(cfg, [pool_name])):
                add(e, f"runtime {preset.name}")
    for i, e in enumerate(route.expose):
        for r in _expand(Route(e.path, e.match, e.protocol), _client_models(cfg, route.pools)):
            add(r, f"expose[{i}]")
    return out


def internal_paths(cfg: StackConfig, route: RouteConfig) -> list[tuple[str, Route]]:
    """(runtime name, internal endpoint) of every runtime behind the route."""
    out = []
    for pool_name in route.pools:
        pool = next((p for p in cfg.pools if p.name == pool_name), None)
        server = next((s for s in cfg.model_servers if pool and s.name == pool.model_server), None)
        if server is not None:
            preset = resolve_preset(server)
            out += [(preset.name, r) for r in preset.internal]
    return out


def narrow(paths: Iterable[Route], prefix: str) -> list[Route]:
    """The part of ``paths`` under a PathPrefix ``prefix``: an Exact path it covers, or the deeper
    of two overlapping prefixes."""
    outer = Route(prefix, "PathPrefix")
    out = []
    for r in paths:
        if r.match == "Exact":
            if outer.covers(r.path):
                out.append(r)
        elif outer.covers(r.path):
            out.append(r)
        elif r.covers(prefix):
            out.append(Route(prefix, "PathPrefix", r.protocol))
    return list(dict.fromkeys(out))


def _show(r: Route) -> str:
    return r.path if r.match == "Exact" else f"{r.path.rstrip('/')}/*"


def exposure_problems(cfg: StackConfig) -> list[str]:
    """Config errors: a widening or runtime override reaching an internal endpoint, a route path
    outside the client API (predict_route, invocations_path, path_prefix, matches)."""
    problems: list[str] = []
    for i, s in enumerate(cfg.model_servers):
        preset = resolve_preset(s)
        for j, r in enumerate(s.runtime_overrides.routes or []):
            route = Route(r.path, r.match, r.protocol)
            hits = [x for x in preset.internal if x.overlaps(route)]
            if hits:
                problems.append(
                    f"model_servers[{i}].runtime_overrides.routes[{j}]: {_show(route)!r} reaches internal endpoints of "
                    f"runtime {preset.name} ({', '.join(_show(x) for x in hits)}); admin and internal endpoints are "
                    "never exposed through a gateway"
                )
    for gi, g in enumerate(cfg.gateways):
        for ri, route in enumerate(g.routes):
            at = f"gateways[{gi}].routes[{ri}]"
            internal = internal_paths(cfg, route)
            for k, e in enumerate(route.expose):
                r = Route(e.path, e.match, e.protocol)
                hits = sorted({f"{_show(x)} ({rt})" for rt, x in internal if x.overlaps(r)})
                if hits:
                    problems.append(
                        f"{at}.expose[{k}]: {_show(r)!r} reaches internal endpoints {', '.join(hits)}; admin and "
                        "internal endpoints are never exposed through a gateway (expose only client API paths)"
                    )
            api = [p.route for p in route_api_paths(cfg, route)]
            http = [r for r in api if r.protocol == "http"]
            allowed = ", ".join(_show(r) for r in http) or "none"
            if route.shape == "predict" and not any(r.covers(route.predict_route or "") for r in http):
                problems.append(
                    f"{at}.predict_route: {route.predict_route!r} is not a client API path of the route's runtimes "
                    f"(allowed: {allowed}); add it to expose to widen the route explicitly"
                )
            if route.shape == "prefix":
                if not narrow(api, route.path_prefix):
                    problems.append(
                        f"{at}.path_prefix: {route.path_prefix!r} covers none of the client API paths ({allowed}); "
                        "the route would expose nothing"
                    )
                for k, m in enumerate(route.matches):
                    if m.path_exact and not any(r.covers(m.path_exact) for r in api):
                        problems.append(f"{at}.matches[{k}].path_exact: {m.path_exact!r} is not a client API path (allowed: {allowed})")
                    if m.path_prefix and not narrow(api, m.path_prefix):
                        problems.append(f"{at}.matches[{k}].path_prefix: {m.path_prefix!r} covers none of the client API paths ({allowed})")
            if route.served_model_routes and route.shape == "prefix":
                for pool_name in route.pools:
                    target = invocation_path(cfg, route, pool_name)
                    preset = pool_preset(cfg, pool_name)
                    templates = preset.routes_for("http") if preset is not None else ()
                    if target is not None and not any(r.covers(target) for r in (*http, *templates)):
                        problems.append(
                            f"{at}.invocations_path: {target!r} is not a client API path (allowed: {allowed}); "
                            "/served-models/<name>/invocations would reach nothing"
                        )
    return problems


def exposure_report(cfg: StackConfig) -> list[str]:
    """One line per route: what a client can reach through it (printed by `igw validate`)."""
    lines = []
    for g in cfg.gateways:
        for route in g.routes:
            api = route_api_paths(cfg, route)
            if route.shape == "predict":
                shown = [route.predict_route or ""]
            elif route.shape == "invoke":
                shown = [f"{route.mount}{_show(p.route)}" for p in api if p.protocol == "http"]
            else:
                shown = [_show(r) for r in narrow([p.route for p in api], route.path_prefix)]
            widened = [f"{_show(p.route)} ({p.source})" for p in api if p.source.startswith("expose")]
            line = f"{g.name}/{route.name}: {', '.join(shown)}"
            if widened:
                line += f"; widened by the stack: {', '.join(widened)}"
            lines.append(line)
    return lines
