"""HTTPRoutes from a gateway's route config: pure functions returning Kubernetes-native dicts.

Exposed surface by allow-list: a route matches only the client API paths its runtimes declare
(``RuntimePreset.routes``, plus the route's explicit ``expose``; derived once in
``components/config/exposure.py``), for every shape. Anything else - adapter load/unload,
/metrics, cache reset, sleep/wake, profiling, a simulator's control API - matches no rule and
the gateway answers 404 itself. Path matches are Exact or PathPrefix only (GKE's gateway has no
regex path match).

Route shapes (one HTTPRoute per configured route, `<gateway>-<route>`):

* ``predict_route: /v1/chat/completions`` - exactly that path (``Exact``), which must be a client
  API path.
* ``invoke_route_prefix: "/*"`` (seed 000) - ``/invoke/<path>`` reaches the model server as
  ``/<path>`` for each client API path: an Exact path is matched exactly and rewritten with
  ``ReplaceFullPath``, a PathPrefix one with ``ReplacePrefixMatch`` (one PathPrefix match per
  rule, the HTTPRoute CRD's CEL rule). ``/invoke``, ``/invoke/`` and every other path under it
  match nothing.
* ``base_path: /openai-chat`` - the same with the route's own prefix instead of ``/invoke`` (an
  endpoint's own base URL, as seed 004's ``/serving-endpoints/<name>``).
* none of these - the client API paths under ``path_prefix`` (seed 001 uses ``/``).

Control headers belong to the gateway: every header the gateway or the picker trusts for
routing, priority or endpoint choice (``CONTROL_HEADERS``) is removed from client requests on
every rule, and set only where the config says so (the served-model rules set
``x-llm-d-model-name-rewrite``). ``RequestHeaderModifier`` is Gateway API core, so GKE's gateway
applies it as the local Envoy does.

Reaching one served model directly, bypassing its traffic split (seeds 000 and 002):

* path_prefix routes: ``POST /served-models/<served name>/invocations`` (``Exact``), rewritten
  with ``ReplaceFullPath`` to the pool's invocation path (seed 002): ``invocations_path``, else
  the runtime's own (``/v1/chat/completions``, Caikit ``/api/v1/task/text-generation`` or
  ``/api/v1/task/embedding``, KServe v2 ``/v2/models/<target model>/infer``), with
  ``x-llm-d-model-name-rewrite: <target model>`` set by the rule. gRPC pools get no such path
  (gRPC clients call ``/<package.Service>/<Method>``); their served models use the header below.
* any route: the header ``x-deployed-model-id: <served name>`` (seed 000 ``deployed_model_id``),
  resolved by the pool's picker from its config (an unknown id is a 404 there). A route over
  several pools gets one rule per pool matching its ids, so the request reaches the pool that
  serves the id. ``served_model_routes: false`` removes the header instead.

Backends are InferencePools (group ``inference.networking.k8s.io``, no port); ``backends`` gives
weighted backendRefs between pools (blue/green of a whole base model).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from ..catalog.runtime_preset import MODEL_PLACEHOLDER, Route
from ..config import GatewayConfig, RouteConfig, ServedModelConfig
from ..config.exposure import narrow
from ..config.served_models import ServedTarget, served_targets

GATEWAY_GROUP = "gateway.networking.k8s.io"
POOL_GROUP = "inference.networking.k8s.io"
POOL_KIND = "InferencePool"
MODEL_REWRITE_HEADER = "x-llm-d-model-name-rewrite"
"""The endpoint picker's header: serve exactly this model, skip the traffic split."""
DEPLOYED_MODEL_HEADER = "x-deployed-model-id"
"""Clients name a served model with this header (seed 000); the picker resolves it."""
CONTROL_HEADERS = (
    MODEL_REWRITE_HEADER,
    # priority: the InferenceObjective a request runs under
    "x-gateway-inference-objective", "x-llm-d-inference-objective",
    # endpoint choice: the picker's answer (Envoy's override_host also reads the header) and hints
    "x-gateway-destination-endpoint", "x-gateway-destination-endpoint-subset", "x-gateway-destination-endpoint-served",
    # the reference picker's flow-control and SLO inputs (a user may swap it in)
    "x-llm-d-inference-fairness-id", "x-llm-d-slo-ttft-ms", "x-llm-d-slo-tpot-ms",
)
"""Headers the gateway or a picker trusts; never taken from a client."""
INVOKE_PREFIX = "/invoke/"
MAX_RULES = 16
"""HTTPRoute spec.rules maxItems (Gateway API CRD)."""
MAX_MATCHES_PER_RULE = 64
MAX_MATCHES = 128
"""HTTPRoute CEL: at most 64 matches per rule and 128 across the rules of a route."""


def route_name(gateway: GatewayConfig, route: RouteConfig) -> str:
    return f"{gateway.name}-{route.name}"


def pool_ref(pool: str, weight: int | None = None) -> dict[str, Any]:
    ref: dict[str, Any] = {"group": POOL_GROUP, "kind": POOL_KIND, "name": pool}
    if weight is not None:
        ref["weight"] = weight
    return ref


def backend_refs(route: RouteConfig) -> list[dict[str, Any]]:
    if route.pool:
        return [pool_ref(route.pool)]
    return [pool_ref(b.pool, b.weight) for b in route.backends]


@dataclass(frozen=True)
class _Group:
    """Matches that share one rewrite (one rule, or one rule per match for ReplacePrefixMatch)."""

    matches: list[dict[str, Any]]
    rewrite: dict[str, Any] | None = None


def _with(m, path: dict[str, str]) -> dict[str, Any]:
    match: dict[str, Any] = {"path": path}
    if m is not None and m.headers:
        match["headers"] = [{"type": h.type, "name": h.name, "value": h.value} for h in m.headers]
    if m is not None and m.method:
        match["method"] = m.method
    return match


def _url_rewrite(kind: str, value: str) -> dict[str, Any]:
    key = "replaceFullPath" if kind == "ReplaceFullPath" else "replacePrefixMatch"
    return {"type": "URLRewrite", "urlRewrite": {"path": {"type": kind, key: value}}}


def endpoint_groups(route: RouteConfig, api: Sequence[Route]) -> list[_Group]:
    """What the route's endpoint matches, by shape, limited to the client API paths ``api``."""
    http = [r for r in api if r.protocol == "http"]
    configured = route.matches or [None]
    if route.shape == "predict":
        return [_Group([_with(m, {"type": "Exact", "value": route.predict_route}) for m in configured])]
    if route.shape == "invoke":
        groups = []
        base = route.mount  # /invoke, or the route's base_path
        for r in http:
            if r.match == "Exact":
                path = {"type": "Exact", "value": base + r.path}
                groups.append(_Group([_with(m, path) for m in configured], _url_rewrite("ReplaceFullPath", r.path)))
            else:
                prefix = r.path.rstrip("/") or "/"
                path = {"type": "PathPrefix", "value": base + (prefix if prefix != "/" else "")}
                groups.append(_Group([_with(m, path) for m in configured], _url_rewrite("ReplacePrefixMatch", prefix)))
        return groups
    matches = []
    for m in configured:
        if m is not None and m.path_exact:
            paths = [Route(m.path_exact)]
        else:
            paths = narrow(api, m.path_prefix if m is not None and m.path_prefix else route.path_prefix)
        matches += [_with(m, {"type": r.match, "value": r.path}) for r in paths]
    return [_Group(matches)]


def _headers_filter(set_headers: dict[str, str], strip_deployed: bool) -> dict[str, Any]:
    remove = [h for h in CONTROL_HEADERS if h not in set_headers]
    if strip_deployed:
        remove.append(DEPLOYED_MODEL_HEADER)
    modifier: dict[str, Any] = {}
    if set_headers:
        modifier["set"] = [{"name": k, "value": v} for k, v in set_headers.items()]
    modifier["remove"] = remove
    return {"type": "RequestHeaderModifier", "requestHeaderModifier": modifier}


def _emit(group: _Group, headers: dict[str, Any], backends: list[dict[str, Any]], matches=None) -> list[dict[str, Any]]:
    matches = group.matches if matches is None else matches
    filters = [f for f in (group.rewrite, headers) if f is not None]
    prefix_rewrite = group.rewrite is not None and "replacePrefixMatch" in group.rewrite["urlRewrite"]["path"]
    chunks = [[m] for m in matches] if prefix_rewrite else [matches]
    return [{"matches": c, "filters": copy.deepcopy(filters), "backendRefs": list(backends)} for c in chunks if c]


def route_rules(route: RouteConfig, targets: list[ServedTarget], api: Sequence[Route],
                invocations: Mapping[str, str | None]) -> list[dict[str, Any]]:
    """The HTTPRoute rules of one route: served-model rules first, then the endpoint.
    ``invocations``: pool -> where its served-model path lands (``{model}`` = the target model;
    None: no served-model path, as for gRPC pools); see ``config.runtime_rules.invocation_paths``."""
    rules: list[dict[str, Any]] = []
    strip_deployed = not route.served_model_routes
    if route.served_model_routes and route.shape == "prefix":
        for t in targets:
            landing = invocations.get(t.pool)
            if landing is None:
                continue
            rules.append({
                "matches": [{"path": {"type": "Exact", "value": t.invocations_path}}],
                "filters": [_url_rewrite("ReplaceFullPath", landing.replace(MODEL_PLACEHOLDER, t.model)),
                            _headers_filter({MODEL_REWRITE_HEADER: t.model}, strip_deployed=True)],
                "backendRefs": [pool_ref(t.pool)],
            })
    groups = endpoint_groups(route, api)
    plain = _headers_filter({}, strip_deployed)
    if route.served_model_routes and len(route.pools) > 1:
        # The picker resolves x-deployed-model-id; with several pools the gateway first sends the
        # request to the pool that serves the id.
        for pool in route.pools:
            ids = [t.name for t in targets if t.pool == pool]
            for g in groups:
                matches = [
                    {**m, "headers": [*m.get("headers", []), {"type": "Exact", "name": DEPLOYED_MODEL_HEADER, "value": i}]}
                    for i in ids for m in g.matches
                ]
                rules += _emit(g, plain, [pool_ref(pool)], matches)
    for g in groups:
        rules += _emit(g, plain, backend_refs(route))
    return rules


def httproute_manifest(
    gateway: GatewayConfig,
    route: RouteConfig,
    models: Iterable[ServedModelConfig],
    namespace: str,
    labels: dict[str, str] | None = None,
    *,
    api: Sequence[Route],
    invocations: Mapping[str, str | None],
) -> dict[str, Any]:
    """The HTTPRoute for one configured route of one gateway; ``api`` is what it may expose
    (``[p.route for p in components.config.exposure.route_api_paths(cfg, route)]``),
    ``invocations`` where its served-model paths land (``runtime_rules.invocation_paths``)."""
    targets = served_targets(models, route.pools)
    rules = route_rules(route, targets, api, invocations)
    problem = rule_limit_problem(rules)
    if problem:
        raise ValueError(f"route {route.name!r} of gateway {gateway.name!r} {problem}")
    spec: dict[str, Any] = {
        "parentRefs": [{"group": GATEWAY_GROUP, "kind": "Gateway", "name": gateway.name}],
        "rules": rules,
    }
    if route.hostnames:
        spec["hostnames"] = list(route.hostnames)
    return {
        "apiVersion": f"{GATEWAY_GROUP}/v1",
        "kind": "HTTPRoute",
        "metadata": {
            "name": route_name(gateway, route),
            "namespace": namespace,
            "labels": {**(labels or {}), "inference-gateway/gateway": gateway.name, "inference-gateway/route": route.name},
        },
        "spec": spec,
    }


def rule_limit_problem(rules: list[dict[str, Any]]) -> str | None:
    """Why these rules do not fit one HTTPRoute, or None."""
    if not rules:
        return "matches no path (its runtimes' client API has no path under it)"
    if len(rules) > MAX_RULES:
        return f"needs {len(rules)} HTTPRoute rules; at most {MAX_RULES} are allowed"
    widest = max(len(r["matches"]) for r in rules)
    if widest > MAX_MATCHES_PER_RULE:
        return f"needs {widest} matches in one rule; at most {MAX_MATCHES_PER_RULE} are allowed"
    total = sum(len(r["matches"]) for r in rules)
    if total > MAX_MATCHES:
        return f"needs {total} matches; an HTTPRoute allows {MAX_MATCHES} across its rules"
    return None


def route_limit_problem(route: RouteConfig, models: Iterable[ServedModelConfig], api: Sequence[Route],
                        invocations: Mapping[str, str | None]) -> str | None:
    return rule_limit_problem(route_rules(route, served_targets(models, route.pools), api, invocations))
