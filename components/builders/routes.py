"""HTTPRoutes from a gateway's route config: pure functions returning Kubernetes-native dicts.

Route shapes (one HTTPRoute per configured route, `<gateway>-<route>`):

* ``predict_route: /v1/chat/completions`` - exactly that path (``Exact``) and nothing else.
* ``invoke_route_prefix: "/*"`` (seed 000) - ``PathPrefix /invoke/`` rewritten with
  ``ReplacePrefixMatch /``, so ``/invoke/foo/bar`` reaches the model server as ``/foo/bar``.
  Only non-root paths: ``/invoke`` and ``/invoke/`` (Exact) reach the server unrewritten, so the
  root is never exposed. No other path of the endpoint is exposed. One PathPrefix match per rule: the HTTPRoute CRD's
  CEL rule requires exactly one PathPrefix match next to a ReplacePrefixMatch rewrite.
* neither - ``PathPrefix <path_prefix>`` (seed 001 uses ``/``).

Reaching one served model directly, bypassing its traffic split (seeds 000 and 002): the rule
sets ``x-llm-d-model-name-rewrite: <target model>``, which the endpoint picker honours instead of
the InferenceModelRewrite split. Every other rule removes that header, so clients cannot force a
target themselves.

* path_prefix routes: ``POST /served-models/<served name>/invocations`` (``Exact``), rewritten
  with ``ReplaceFullPath`` to ``invocations_path`` (seed 002).
* predict_route / invoke routes: the same path as the endpoint plus the header
  ``x-deployed-model-id: <served name>`` (seed 000 ``deployed_model_id``); no new path appears.

Backends are InferencePools (group ``inference.networking.k8s.io``, no port); ``backends`` gives
weighted backendRefs between pools (blue/green of a whole base model).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable

from ..config import GatewayConfig, RouteConfig, ServedModelConfig
from ..config.served_models import SERVED_MODELS_PREFIX, ServedTarget, served_name, served_targets

GATEWAY_GROUP = "gateway.networking.k8s.io"
POOL_GROUP = "inference.networking.k8s.io"
POOL_KIND = "InferencePool"
MODEL_REWRITE_HEADER = "x-llm-d-model-name-rewrite"
"""The endpoint picker's header: serve exactly this model, skip the traffic split."""
DEPLOYED_MODEL_HEADER = "x-deployed-model-id"
"""Clients name a served model with this header on predict / invoke endpoints (seed 000)."""
INVOKE_PREFIX = "/invoke/"
MAX_RULES = 16
"""HTTPRoute spec.rules maxItems (Gateway API CRD)."""


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


def _base_path(route: RouteConfig) -> dict[str, str]:
    if route.shape == "predict":
        return {"type": "Exact", "value": route.predict_route}
    if route.shape == "invoke":
        return {"type": "PathPrefix", "value": INVOKE_PREFIX}
    return {"type": "PathPrefix", "value": route.path_prefix}


def _matches(route: RouteConfig) -> list[dict[str, Any]]:
    """One match per configured match (or the endpoint's own path when none is configured)."""
    base = _base_path(route)
    if not route.matches:
        return [{"path": dict(base)}]
    out = []
    for m in route.matches:
        if m.path_exact:
            path = {"type": "Exact", "value": m.path_exact}
        elif m.path_prefix:
            path = {"type": "PathPrefix", "value": m.path_prefix}
        else:
            path = dict(base)
        match: dict[str, Any] = {"path": path}
        if m.headers:
            match["headers"] = [{"type": h.type, "name": h.name, "value": h.value} for h in m.headers]
        if m.method:
            match["method"] = m.method
        out.append(match)
    return out


def _invoke_rewrite() -> dict[str, Any]:
    return {"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}}}


def _strip_rewrite_header() -> dict[str, Any]:
    return {"type": "RequestHeaderModifier", "requestHeaderModifier": {"remove": [MODEL_REWRITE_HEADER]}}


def _force_model(model: str) -> dict[str, Any]:
    return {
        "type": "RequestHeaderModifier",
        "requestHeaderModifier": {"set": [{"name": MODEL_REWRITE_HEADER, "value": model}]},
    }


def route_rules(route: RouteConfig, targets: list[ServedTarget]) -> list[dict[str, Any]]:
    """The HTTPRoute rules of one route: direct served-model rules first, then the endpoint."""
    rules: list[dict[str, Any]] = []
    if route.served_model_routes:
        for t in targets:
            if route.shape == "prefix":
                rules.append(
                    {
                        "matches": [{"path": {"type": "Exact", "value": t.invocations_path}}],
                        "filters": [
                            {
                                "type": "URLRewrite",
                                "urlRewrite": {"path": {"type": "ReplaceFullPath", "replaceFullPath": route.invocations_path}},
                            },
                            _force_model(t.model),
                        ],
                        "backendRefs": [pool_ref(t.pool)],
                    }
                )
            else:
                filters = [_invoke_rewrite()] if route.shape == "invoke" else []
                header = {"type": "Exact", "name": DEPLOYED_MODEL_HEADER, "value": t.name}
                matches = []
                for m in _matches(route):
                    m = dict(m)
                    m["headers"] = [*m.get("headers", []), header]
                    matches.append(m)
                # ReplacePrefixMatch needs exactly one PathPrefix match per rule (CRD CEL rule).
                groups = [[m] for m in matches] if route.shape == "invoke" else [matches]
                for group in groups:
                    rules.append({"matches": group, "filters": [*filters, _force_model(t.model)], "backendRefs": [pool_ref(t.pool)]})
    if route.shape == "invoke":
        # `/invoke` and `/invoke/` would become the server's root `/`: seed 000 exposes only
        # non-root paths, so pass them through unrewritten (the server answers 404). Exact
        # matches take precedence over every PathPrefix rule.
        root = []
        for m in route.matches or [None]:
            for value in (INVOKE_PREFIX.rstrip("/"), INVOKE_PREFIX):
                match: dict[str, Any] = {"path": {"type": "Exact", "value": value}}
                if m is not None and m.headers:
                    match["headers"] = [{"type": h.type, "name": h.name, "value": h.value} for h in m.headers]
                if m is not None and m.method:
                    match["method"] = m.method
                root.append(match)
        rules.append({"matches": root, "filters": [_strip_rewrite_header()], "backendRefs": backend_refs(route)})
    base_filters = [_invoke_rewrite()] if route.shape == "invoke" else []
    base_filters.append(_strip_rewrite_header())
    matches = _matches(route)
    groups = [[m] for m in matches] if route.shape == "invoke" else [matches]
    for group in groups:
        rules.append({"matches": group, "filters": list(base_filters), "backendRefs": backend_refs(route)})
    return rules


def httproute_manifest(
    gateway: GatewayConfig,
    route: RouteConfig,
    models: Iterable[ServedModelConfig],
    namespace: str,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The HTTPRoute for one configured route of one gateway."""
    targets = served_targets(models, route.pools)
    rules = route_rules(route, targets)
    if len(rules) > MAX_RULES:
        raise ValueError(
            f"route {route.name!r} of gateway {gateway.name!r} needs {len(rules)} rules; an HTTPRoute "
            f"allows {MAX_RULES} (set served_model_routes: false or split the route)"
        )
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


def rule_count(route: RouteConfig, models: Iterable[ServedModelConfig]) -> int:
    return len(route_rules(route, served_targets(models, route.pools)))
