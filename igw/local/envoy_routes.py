"""HTTPRoute rules → Envoy routes for a LocalPlan listener (its RDS route configuration).

Matches (path, headers, method, query), URLRewrite, weighted backends, the retry policy, request
header modifiers (in the header_mutation filter, so the picker sees them) and response header
modifiers; each route enables the ext_proc filter of the pool(s) it sends traffic to.
"""

from __future__ import annotations

import re
from typing import Any

from .envoy_names import HEADER_MUTATION, ext_proc_name, listener_name, pool_cluster_name
from .plan import LocalPlan
from .plan_routes import Listener, RouteEntry, precedence

_HM_ROUTE = "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutationPerRoute"
_FILTER_CONFIG = "type.googleapis.com/envoy.config.route.v3.FilterConfig"
_EXT_PROC_ROUTE = "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute"


def _match(e: RouteEntry) -> dict[str, Any]:
    m: dict[str, Any]
    if e.path_type == "Exact":
        m = {"path": e.path}
    elif e.path_type == "RegularExpression":
        m = {"safe_regex": {"regex": e.path}}
    elif e.path.rstrip("/") == "":
        m = {"prefix": "/"}
    else:
        m = {"path_separated_prefix": e.path.rstrip("/")}
    headers = []
    for h in e.headers:
        sm = {"exact": h.value} if h.type == "Exact" else {"safe_regex": {"regex": h.value}}
        headers.append({"name": h.name.lower(), "string_match": sm})
    if e.method:
        headers.append({"name": ":method", "string_match": {"exact": e.method}})
    if headers:
        m["headers"] = headers
    if e.query:
        m["query_parameters"] = [{"name": q.name, "string_match": {"exact": q.value} if q.type == "Exact"
                                  else {"safe_regex": {"regex": q.value}}} for q in e.query]
    return m


def _rewrite(e: RouteEntry) -> dict[str, Any]:
    """URLRewrite → regex_rewrite (query strings are preserved by Envoy)."""
    if e.rewrite_full is not None:
        return {"regex_rewrite": {"pattern": {"regex": "^.*$"}, "substitution": e.rewrite_full}}
    if e.rewrite_prefix is None:
        return {}
    prefix = e.path.rstrip("/") if e.path_type == "PathPrefix" else e.path
    repl = e.rewrite_prefix.rstrip("/")
    if repl == "":
        # /invoke/foo/bar → /foo/bar, /invoke → /
        return {"regex_rewrite": {"pattern": {"regex": f"^{re.escape(prefix)}/*(.*)$"}, "substitution": "/\\1"}}
    return {"regex_rewrite": {"pattern": {"regex": f"^{re.escape(prefix)}(/.*)?$"}, "substitution": repl + "\\1"}}


def _enable_ext_proc(pool: str) -> dict[str, Any]:
    return {ext_proc_name(pool): {"@type": _FILTER_CONFIG, "config": {"@type": _EXT_PROC_ROUTE, "overrides": {}}}}


def _route(e: RouteEntry, plan: LocalPlan, retries: int) -> dict[str, Any]:
    r: dict[str, Any] = {"name": f"{e.route}#{e.rule}", "match": _match(e)}
    backends = [(p, w) for p, w in e.backends if w > 0]
    if not backends:
        r["direct_response"] = {"status": 500, "body": {"inline_string": "no backend for this route\n"}}
        return r
    timeout = e.timeout_s if e.timeout_s is not None else max(plan.pools[p].timeout_s for p, _ in backends)
    action: dict[str, Any] = {"timeout": f"{timeout:g}s", **_rewrite(e)}
    if e.rewrite_host:
        action["host_rewrite_literal"] = e.rewrite_host
    per_filter: dict[str, Any] = {}
    if len(backends) == 1:
        action["cluster"] = pool_cluster_name(backends[0][0])
        per_filter.update(_enable_ext_proc(backends[0][0]))
    else:
        action["weighted_clusters"] = {"clusters": [
            {"name": pool_cluster_name(p), "weight": w, "typed_per_filter_config": _enable_ext_proc(p)}
            for p, w in backends]}
    if retries:
        action["retry_policy"] = {
            # Only failures before any response byte: the request never started streaming.
            "retry_on": "connect-failure,refused-stream,reset-before-request,reset",
            "num_retries": retries,
            "retry_host_predicate": [{"name": "envoy.retry_host_predicates.previous_hosts", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"}}],
            "host_selection_retry_max_attempts": 5,
        }
    mutations = [{"append": {"header": {"key": k, "value": v}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}}
                 for k, v in e.set_headers]
    mutations += [{"append": {"header": {"key": k, "value": v}, "append_action": "APPEND_IF_EXISTS_OR_ADD"}}
                  for k, v in e.add_headers]
    mutations += [{"remove": k} for k in e.remove_headers]
    if mutations:
        per_filter[HEADER_MUTATION] = {"@type": _HM_ROUTE, "mutations": {"request_mutations": mutations}}
    r["route"] = action
    resp = [{"header": {"key": k, "value": v}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"} for k, v in e.response_set]
    resp += [{"header": {"key": k, "value": v}, "append_action": "APPEND_IF_EXISTS_OR_ADD"} for k, v in e.response_add]
    if resp:
        r["response_headers_to_add"] = resp
    if e.response_remove:
        r["response_headers_to_remove"] = list(e.response_remove)
    if per_filter:
        r["typed_per_filter_config"] = per_filter
    return r


def route_config(lst: Listener, plan: LocalPlan, retries: int = 3) -> dict[str, Any]:
    """Virtual hosts by hostname set (routes without hostnames join every host), routes in
    Gateway API precedence order (the plan sorted them)."""
    named: dict[tuple[str, ...], list[RouteEntry]] = {}
    anyhost = [e for e in lst.routes if not e.hostnames]
    for e in lst.routes:
        if e.hostnames:
            named.setdefault(tuple(sorted(e.hostnames)), []).append(e)
    vhosts = []
    for i, (hosts, entries) in enumerate(sorted(named.items())):
        routes = sorted(entries + anyhost, key=precedence)
        vhosts.append({"name": f"hosts-{i}", "domains": list(hosts), "routes": [_route(e, plan, retries) for e in routes]})
    vhosts.append({"name": "any", "domains": ["*"], "routes": [_route(e, plan, retries) for e in anyhost]})
    return {"name": listener_name(lst), "virtual_hosts": vhosts}
