"""Gateways and HTTPRoutes → the listeners and routes Envoy serves locally (pure).

Each HTTPRoute rule × match becomes a `RouteEntry`: path, header, query and method matches,
URLRewrite, request and response header modifiers, weighted backendRefs to InferencePools and
`timeouts.request`. Each HTTP listener of a Gateway becomes a `Listener` on its own local port
with the entries of the routes attached to it (whole Gateway or that section), sorted in Gateway
API precedence. Other backends and filters are reported as problems; non-HTTP listeners are
skipped (TLS certificates are cloud-only).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .plan_pools import POOL_GROUP, POOL_KIND, Pool
from .rendered_objects import duration_seconds, object_meta, object_ref


@dataclass(frozen=True)
class HeaderMatch:
    name: str
    value: str
    type: str = "Exact"  # Exact | RegularExpression


@dataclass(frozen=True)
class RouteEntry:
    """One HTTPRoute rule x one of its matches (Envoy route), in Gateway API precedence order."""

    route: str                  # namespace/name of the HTTPRoute
    rule: int
    path_type: str              # Exact | PathPrefix | RegularExpression
    path: str
    headers: tuple[HeaderMatch, ...] = ()
    method: str | None = None
    rewrite_prefix: str | None = None   # URLRewrite ReplacePrefixMatch
    rewrite_full: str | None = None     # URLRewrite ReplaceFullPath
    rewrite_host: str | None = None
    set_headers: tuple[tuple[str, str], ...] = ()
    add_headers: tuple[tuple[str, str], ...] = ()
    remove_headers: tuple[str, ...] = ()
    backends: tuple[tuple[str, int], ...] = ()  # (pool name, weight)
    query: tuple[HeaderMatch, ...] = ()
    response_set: tuple[tuple[str, str], ...] = ()
    response_add: tuple[tuple[str, str], ...] = ()
    response_remove: tuple[str, ...] = ()
    timeout_s: float | None = None      # HTTPRoute timeouts.request
    hostnames: tuple[str, ...] = ()


@dataclass(frozen=True)
class Listener:
    gateway: str
    name: str
    port: int                   # the Gateway's port
    local_port: int             # where Envoy listens
    protocol: str
    routes: tuple[RouteEntry, ...]


def _route_entries(route: dict[str, Any], pools: dict[str, Pool], problems: list[str]) -> list[RouteEntry]:
    ns, name = object_meta(route)
    spec = route.get("spec") or {}
    hostnames = tuple(spec.get("hostnames") or ())
    out = []
    for ri, rule in enumerate(spec.get("rules") or []):
        backends = []
        for b in rule.get("backendRefs") or []:
            kind, group = b.get("kind", "Service"), b.get("group", "")
            if kind != POOL_KIND or group != POOL_GROUP:
                problems.append(f"HTTPRoute {ns}/{name} rule {ri}: backend {kind} {b.get('name')} is not an "
                                f"InferencePool ({POOL_GROUP}); only pools run locally")
                continue
            if b.get("name") not in pools:
                problems.append(f"HTTPRoute {ns}/{name} rule {ri}: InferencePool {b.get('name')!r} not found")
                continue
            backends.append((str(b["name"]), int(b.get("weight", 1))))
        rw_prefix = rw_full = rw_host = None
        rsets: list[tuple[str, str]] = []
        radds: list[tuple[str, str]] = []
        rremoves: list[str] = []
        sets: list[tuple[str, str]] = []
        adds: list[tuple[str, str]] = []
        removes: list[str] = []
        for f in rule.get("filters") or []:
            t = f.get("type")
            if t == "URLRewrite":
                u = f.get("urlRewrite") or {}
                rw_host = u.get("hostname") or rw_host
                p = u.get("path") or {}
                if p.get("type") == "ReplacePrefixMatch":
                    rw_prefix = p.get("replacePrefixMatch", "/")
                elif p.get("type") == "ReplaceFullPath":
                    rw_full = p.get("replaceFullPath", "/")
            elif t == "RequestHeaderModifier":
                m = f.get("requestHeaderModifier") or {}
                sets += [(h["name"], str(h["value"])) for h in m.get("set") or []]
                adds += [(h["name"], str(h["value"])) for h in m.get("add") or []]
                removes += list(m.get("remove") or [])
            elif t == "ResponseHeaderModifier":
                m = f.get("responseHeaderModifier") or {}
                rsets += [(h["name"], str(h["value"])) for h in m.get("set") or []]
                radds += [(h["name"], str(h["value"])) for h in m.get("add") or []]
                rremoves += list(m.get("remove") or [])
            else:
                problems.append(f"HTTPRoute {ns}/{name} rule {ri}: filter {t} is not supported locally")
        timeout = duration_seconds((rule.get("timeouts") or {}).get("request"))
        matches = rule.get("matches") or [{"path": {"type": "PathPrefix", "value": "/"}}]
        for m in matches:
            path = m.get("path") or {"type": "PathPrefix", "value": "/"}
            out.append(RouteEntry(
                route=f"{ns}/{name}", rule=ri, path_type=path.get("type", "PathPrefix"), path=path.get("value", "/"),
                headers=tuple(HeaderMatch(h["name"], str(h["value"]), h.get("type", "Exact")) for h in m.get("headers") or []),
                method=m.get("method"), rewrite_prefix=rw_prefix, rewrite_full=rw_full, rewrite_host=rw_host,
                set_headers=tuple(sets), add_headers=tuple(adds), remove_headers=tuple(removes),
                backends=tuple(backends), timeout_s=timeout, hostnames=hostnames,
                query=tuple(HeaderMatch(q["name"], str(q["value"]), q.get("type", "Exact")) for q in m.get("queryParams") or []),
                response_set=tuple(rsets), response_add=tuple(radds), response_remove=tuple(rremoves),
            ))
    return out


def precedence(e: RouteEntry) -> tuple:
    """Gateway API order: exact path, longest prefix, method, most headers, then declaration."""
    return (
        0 if e.path_type == "Exact" else 1 if e.path_type == "PathPrefix" else 2,
        -len(e.path),
        0 if e.method else 1,
        -len(e.headers),
        -len(e.query),
        e.route,
        e.rule,
    )


def gateway_listeners(objects: list[dict[str, Any]], pools: dict[str, Pool], port: int,
                      problems: list[str], skipped: list[tuple[str, str]]) -> list[Listener]:
    """One Listener per HTTP listener of every Gateway, on `port`, `port`+1, ... in order."""
    routes_by_parent: dict[tuple[str, str | None], list[RouteEntry]] = {}
    for o in objects:
        if o.get("kind") != "HTTPRoute":
            continue
        entries = _route_entries(o, pools, problems)
        ns, _ = object_meta(o)
        for pr in (o.get("spec") or {}).get("parentRefs") or []:
            if pr.get("kind", "Gateway") != "Gateway":
                continue
            key = (f"{pr.get('namespace') or ns}/{pr['name']}", pr.get("sectionName"))
            routes_by_parent.setdefault(key, []).extend(entries)
    listeners: list[Listener] = []
    next_port = port
    for o in objects:
        if o.get("kind") != "Gateway":
            continue
        ns, gname = object_meta(o)
        for lst in (o.get("spec") or {}).get("listeners") or []:
            proto = lst.get("protocol", "HTTP")
            if proto != "HTTP":
                skipped.append((f"{object_ref(o)} listener {lst.get('name')} ({proto}:{lst.get('port')})",
                                "TLS certificates are cloud-only; use the HTTP listener locally"))
                continue
            entries = routes_by_parent.get((f"{ns}/{gname}", None), []) + \
                routes_by_parent.get((f"{ns}/{gname}", lst.get("name")), [])
            listeners.append(Listener(gateway=f"{ns}/{gname}", name=str(lst.get("name")), port=int(lst.get("port", 80)),
                                      local_port=next_port, protocol=proto,
                                      routes=tuple(sorted(entries, key=precedence))))
            next_port += 1
    return listeners
