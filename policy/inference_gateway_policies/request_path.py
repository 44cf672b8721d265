"""The request path: nothing a client sends bypasses policy.

* ``routes-no-admin-paths`` - no HTTPRoute match lets an admin or internal endpoint of a model
  server through (adapter load/unload, metrics, cache reset, sleep/wake, profiling, health, a
  simulator's control API), whether exactly or under a PathPrefix (``/`` covers them all).
* ``routes-strip-control-headers`` - every HTTPRoute rule removes each header the gateway or the
  endpoint picker trusts for routing, priority or endpoint choice, unless that rule sets it.
* ``rate-limits-trusted-identity`` - a picker whose config has per-user rate limits keys them on
  the API key's user or the load-balancer-appended client address, never on a header a client
  can send (``auth.user_header``) nor on the client-controlled part of X-Forwarded-For
  (``auth.client_address_hop`` other than the hops the gateway appends).

The defaults below are this pack's own lists (a published pack has no checkout);
tests/policy/test_request_path_policies.py keeps them covering the program's runtime presets
and route builder.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml
from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
)

from ._common import config, fmt, get, is_map, items, k8s_kind, k8s_name, label, number

HTTP_ROUTE = ("gateway.networking.k8s.io", "HTTPRoute")
CONFIG_MAP = ("", "ConfigMap")
PICKER_CONFIG_KEY = "picker.yaml"

ADMIN_PATHS = (
    # vLLM's OpenAI server
    "/metrics", "/health", "/ping", "/load", "/version", "/server_info",
    "/v1/load_lora_adapter", "/v1/unload_lora_adapter", "/reset_prefix_cache", "/reset_mm_cache",
    "/sleep", "/wake_up", "/is_sleeping", "/start_profile", "/stop_profile", "/collective_rpc",
    "/scale_elastic_ep", "/is_scaling_elastic_ep", "/pause", "/resume",
    # KServe v2 servers (Triton, OpenVINO): health, model repository control, logging, tracing
    "/v2/health/live", "/v2/health/ready", "/v2/repository/index", "/v2/repository/models/x/load",
    "/v2/repository/models/x/unload", "/v2/models/stats", "/v2/logging", "/v2/trace/setting",
    "/v2/systemsharedmemory/status", "/v2/cudasharedmemory/status",
    "/inference.GRPCInferenceService/RepositoryModelLoad", "/inference.GRPCInferenceService/RepositoryModelUnload",
    "/inference.GRPCInferenceService/ServerLive", "/inference.GRPCInferenceService/ServerReady",
    # the local model-server simulator's control API
    "/sim/control", "/sim/state",
)
"""Representative admin and internal paths: a route that lets any of them through is refused."""

CONTROL_HEADERS = (
    "x-llm-d-model-name-rewrite",
    "x-gateway-inference-objective", "x-llm-d-inference-objective",
    "x-gateway-destination-endpoint", "x-gateway-destination-endpoint-subset", "x-gateway-destination-endpoint-served",
    "x-llm-d-inference-fairness-id", "x-llm-d-slo-ttft-ms", "x-llm-d-slo-tpot-ms",
)
"""Headers the gateway or an endpoint picker trusts for routing, priority or endpoint choice."""

TRUSTED_HOPS = 2
"""Entries GKE's regional load balancers append to X-Forwarded-For: `<client-ip>,<lb-ip>`."""


def _who(args: ResourceValidationArgs) -> str:
    return label(args.resource_type, k8s_name(args.props, args.name))


def _covers(match_type: str, value: str, path: str) -> bool:
    """Gateway API semantics: Exact equality, PathPrefix by whole path segments; a regular
    expression is treated as covering everything (it cannot be checked statically here)."""
    if match_type == "Exact":
        return path == value
    if match_type == "PathPrefix":
        prefix = value.rstrip("/")
        return prefix == "" or path == prefix or path.startswith(prefix + "/")
    return True


def validate_no_admin_paths(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if k8s_kind(args.resource_type) != HTTP_ROUTE:
        return
    admin = [str(p) for p in config(args, "adminPaths", list(ADMIN_PATHS))]
    for i, rule in enumerate(items(get(args.props, "spec.rules"))):
        for j, match in enumerate(items(get(rule, "matches")) if is_map(rule) else []):
            path = get(match, "path") if is_map(match) else None
            kind = str(get(path, "type", "PathPrefix")) if is_map(path) else "PathPrefix"
            value = str(get(path, "value", "/")) if is_map(path) else "/"
            rewrite_to = _rewrite_target(rule, kind, value)
            hits = [a for a in admin if _covers(kind, value, a) or (rewrite_to and _covers(*rewrite_to, a))]
            if hits:
                shown = ", ".join(hits[:5]) + (f" and {len(hits) - 5} more" if len(hits) > 5 else "")
                report(
                    f"{_who(args)}: spec.rules[{i}].matches[{j}] ({kind} {fmt(value)}) lets admin or internal endpoints "
                    f"through ({shown}). Fix: match only the model servers' client API paths (the runtime presets' "
                    "routes; widen with routes[].expose, never to an internal endpoint).",
                    None,
                )


def _rewrite_target(rule: Any, kind: str, value: str) -> tuple[str, str] | None:
    """Where a URLRewrite sends this match on the model server, as a match of its own."""
    for f in items(get(rule, "filters")):
        p = get(f, "urlRewrite.path") if is_map(f) and f.get("type") == "URLRewrite" else None
        if not is_map(p):
            continue
        if p.get("type") == "ReplaceFullPath":
            return "Exact", str(p.get("replaceFullPath", "/"))
        if p.get("type") == "ReplacePrefixMatch" and kind == "PathPrefix":
            return "PathPrefix", str(p.get("replacePrefixMatch", "/"))
    return None


def validate_strip_control_headers(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if k8s_kind(args.resource_type) != HTTP_ROUTE:
        return
    required = [str(h).lower() for h in config(args, "controlHeaders", list(CONTROL_HEADERS))]
    for i, rule in enumerate(items(get(args.props, "spec.rules"))):
        handled: set[str] = set()
        for f in items(get(rule, "filters")) if is_map(rule) else []:
            mod = get(f, "requestHeaderModifier") if is_map(f) and f.get("type") == "RequestHeaderModifier" else None
            if is_map(mod):
                handled |= {str(h).lower() for h in items(mod.get("remove"))}
                handled |= {str(get(h, "name", "")).lower() for h in items(mod.get("set")) if is_map(h)}
        missing = [h for h in required if h not in handled]
        if missing:
            report(
                f"{_who(args)}: spec.rules[{i}] passes client-sent control headers to the picker ({', '.join(missing)}), "
                "so a client can choose its own priority, model or endpoint. Fix: add a RequestHeaderModifier that "
                "removes them (or sets the ones this rule decides).",
                None,
            )


def _picker_config(props: Mapping[str, Any]) -> Mapping[str, Any] | None:
    data = get(props, "data")
    raw = data.get(PICKER_CONFIG_KEY) if is_map(data) else None
    if not isinstance(raw, str):
        return None
    try:
        cfg = yaml.safe_load(raw)
    except yaml.YAMLError:
        return None
    return cfg if is_map(cfg) else None


def validate_rate_limit_identity(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if k8s_kind(args.resource_type) != CONFIG_MAP:
        return
    cfg = _picker_config(args.props)
    if cfg is None:
        return
    per_user = [r for r in items(cfg.get("rate_limits")) if is_map(r) and r.get("key") == "user"]
    if not per_user:
        return
    who = _who(args)
    header = get(cfg, "auth.user_header")
    if header:
        report(
            f"{who}: per-user rate limits key on the request header {fmt(header)} (auth.user_header), which any "
            "client can set to get a fresh limit. Fix: key users on API keys (pools[].picker.api_keys) or the "
            "client address; drop auth.user_header.",
            None,
        )
    hops = int(config(args, "trustedHops", TRUSTED_HOPS))
    hop = number(get(cfg, "auth.client_address_hop"))
    hop = 1 if hop is None else int(hop)
    if hop != hops:
        side = "the client-controlled part of X-Forwarded-For" if hop > hops else "the load balancer's own address"
        report(
            f"{who}: per-user rate limits key on X-Forwarded-For entry {hop} from the right, {side}; the gateway "
            f"appends {hops} entries (<client-ip>,<load-balancer-ip>). Fix: auth.client_address_hop: {hops}.",
            None,
        )


POLICIES = [
    ResourceValidationPolicy(
        name="routes-no-admin-paths",
        description="No HTTPRoute lets a model server's admin or internal endpoints through (adapter load/unload, "
                    "metrics, cache reset, sleep/wake, profiling, health, model repository control).",
        validate=validate_no_admin_paths,
        enforcement_level=EnforcementLevel.MANDATORY,
        severity=Severity.CRITICAL,
        config_schema=PolicyConfigSchema(
            {"adminPaths": {"type": "array", "items": {"type": "string"}, "default": list(ADMIN_PATHS)}}
        ),
    ),
    ResourceValidationPolicy(
        name="routes-strip-control-headers",
        description="Every HTTPRoute rule removes the headers the gateway and the endpoint picker trust "
                    "(model rewrite, inference objective, destination endpoint) from client requests.",
        validate=validate_strip_control_headers,
        enforcement_level=EnforcementLevel.MANDATORY,
        severity=Severity.HIGH,
        config_schema=PolicyConfigSchema(
            {"controlHeaders": {"type": "array", "items": {"type": "string"}, "default": list(CONTROL_HEADERS)}}
        ),
    ),
    ResourceValidationPolicy(
        name="rate-limits-trusted-identity",
        description="Per-user rate limits key on an authenticated user or the load-balancer-appended client "
                    "address, never on a client-supplied header.",
        validate=validate_rate_limit_identity,
        enforcement_level=EnforcementLevel.MANDATORY,
        severity=Severity.HIGH,
        config_schema=PolicyConfigSchema(
            {"trustedHops": {"type": "integer", "default": TRUSTED_HOPS,
                             "description": "X-Forwarded-For entries the gateway appends (GKE regional: 2)."}}
        ),
    ),
]
