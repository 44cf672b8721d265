"""Gateways, inference pools, model rewrites, and the two stack-wide checks: a proxy-only subnet
per regional gateway region, and Model Armor in front of every external gateway."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)

from ._common import (
    CLUSTER,
    EXTERNAL_GATEWAY_CLASSES,
    REGIONAL_GATEWAY_CLASSES,
    SUBNETWORK,
    applies_to_environment,
    config,
    fmt,
    get,
    is_map,
    items,
    k8s_kind,
    k8s_name,
    label,
    number,
)
from .gke import ENVIRONMENTS_SCHEMA

GATEWAY = ("gateway.networking.k8s.io", "Gateway")
INFERENCE_POOL = ("inference.networking.k8s.io", "InferencePool")
REWRITE_GROUPS = ("llm-d.ai", "inference.networking.x-k8s.io")
TRAFFIC_EXTENSION = ("networking.gke.io", "GCPTrafficExtension")
MAX_WEIGHT = 1_000_000


def _who(resource_type: str, props: Mapping[str, Any], name: str) -> str:
    return label(resource_type, k8s_name(props, name))


def validate_gateway_class(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if k8s_kind(args.resource_type) != GATEWAY:
        return
    allowed = list(config(args, "classes", list(REGIONAL_GATEWAY_CLASSES)))
    cls = get(args.props, "spec.gatewayClassName")
    if cls not in allowed:
        report(
            f"{_who(args.resource_type, args.props, args.name)}: gatewayClassName {fmt(cls)} is not supported by "
            f"GKE Inference Gateway (InferencePool backends). Fix: use {' or '.join(allowed)} "
            "(gateways[].class).",
            None,
        )


def validate_pool_picker(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if k8s_kind(args.resource_type) != INFERENCE_POOL:
        return
    who = _who(args.resource_type, args.props, args.name)
    ref = get(args.props, "spec.endpointPickerRef")
    if not is_map(ref) or not ref.get("name"):
        report(
            f"{who}: spec.endpointPickerRef is missing, so no endpoint picker schedules its requests (GKE reports "
            "EndpointPickerRefMissing). Fix: set spec.endpointPickerRef {name: <picker Service>, port: {number: "
            "9002}, failureMode: FailOpen|FailClose}.",
            None,
        )
        return
    if ref.get("kind", "Service") == "Service" and number(get(ref, "port.number")) is None:
        report(f"{who}: spec.endpointPickerRef.port.number is unset; a Service reference needs the picker's "
               "ext_proc Service port. Fix: set spec.endpointPickerRef.port.number (9002).", None)
    allowed = list(config(args, "failureModes", ["FailOpen", "FailClose"]))
    mode = ref.get("failureMode")
    if mode not in allowed:
        shown = "unset (the CRD then defaults to FailClose)" if mode is None else fmt(mode)
        report(
            f"{who}: spec.endpointPickerRef.failureMode is {shown}; what happens when the picker is down must be "
            f"a decision, not a default. Fix: set failureMode to {' or '.join(allowed)} (pools[].failure_mode).",
            None,
        )


def validate_rewrite_weights(args: ResourceValidationArgs, report: ReportViolation) -> None:
    group, kind = k8s_kind(args.resource_type)
    if kind != "InferenceModelRewrite" or group not in REWRITE_GROUPS:
        return
    who = _who(args.resource_type, args.props, args.name)
    rules = items(get(args.props, "spec.rules"))
    if not rules:
        report(f"{who}: spec.rules is empty, so the rewrite does nothing. Fix: add rules with matches and targets.", None)
    for i, rule in enumerate(rules):
        targets = items(get(rule, "targets")) if is_map(rule) else []
        if not targets:
            report(f"{who}: spec.rules[{i}] has no targets, so matching requests have nowhere to go. Fix: add "
                   "targets [{modelRewrite: <model>, weight: <1..1000000>}].", None)
            continue
        weighted = 0
        for j, t in enumerate(targets):
            if not is_map(t) or not t.get("modelRewrite"):
                report(f"{who}: spec.rules[{i}].targets[{j}].modelRewrite is unset. Fix: name the model to rewrite to.", None)
                continue
            if t.get("weight") is None:
                continue
            weighted += 1
            w = t.get("weight")
            n = number(w) if not isinstance(w, str) else None
            if n is None or not n.is_integer() or not 1 <= n <= MAX_WEIGHT:
                report(
                    f"{who}: spec.rules[{i}].targets[{j}] ({t.get('modelRewrite')}) has weight {fmt(w)}; weights are "
                    f"integers from 1 to {MAX_WEIGHT}. Fix: use a weight in that range, or drop the target to send it "
                    "no traffic.",
                    None,
                )
        if 0 < weighted < len(targets):
            report(f"{who}: spec.rules[{i}] sets weights on {weighted} of {len(targets)} targets; set a weight on "
                   "every target or on none.", None)


# -- stack policies --------------------------------------------------------------------------

def _region_of(location: Any) -> str | None:
    if not isinstance(location, str):
        return None
    m = re.fullmatch(r"([a-z]+-[a-z]+\d+)(-[a-z])?", location)
    return m[1] if m else None


def _k8s(resources: list[PolicyResource], kind: tuple[str, str]) -> list[PolicyResource]:
    return [r for r in resources if k8s_kind(r.resource_type) == kind]


def validate_proxy_only_subnets(args: StackValidationArgs, report: ReportViolation) -> None:
    regional = sorted((g for g in _k8s(args.resources, GATEWAY)
                       if get(g.props, "spec.gatewayClassName") in REGIONAL_GATEWAY_CLASSES),
                      key=lambda g: k8s_name(g.props, g.name))  # resources arrive in no fixed order
    if not regional:
        return
    regions = {_region_of(r.props.get("location")) for r in args.resources if r.resource_type == CLUSTER}
    regions |= set(config(args, "gatewayRegions", []))
    regions.discard(None)
    have = {
        r.props.get("region") or config(args, "defaultRegion", None)
        for r in args.resources
        if r.resource_type == SUBNETWORK
        and r.props.get("purpose") == "REGIONAL_MANAGED_PROXY"
        and r.props.get("role") == "ACTIVE"
    }
    have |= set(config(args, "existingSubnetRegions", []))
    names = ", ".join(k8s_name(g.props, g.name) for g in regional)
    for region in sorted(r for r in regions if r not in have):
        report(
            f"Gateway(s) {names} are regional Envoy load balancers in {region}, which has no ACTIVE proxy-only "
            f"subnet, so they never get an address. Fix: add a Subnetwork with purpose REGIONAL_MANAGED_PROXY, "
            f"role ACTIVE in {region} (network.proxy_only_subnets, e.g. 10.129.0.0/23), or list an existing one "
            "in this policy's existingSubnetRegions.",
            regional[0].urn,
        )


def _namespace(props: Mapping[str, Any]) -> str:
    return get(props, "metadata.namespace") or "default"


def _guarded_gateways(resources: list[PolicyResource], service_pattern: str) -> set[tuple[str, str]]:
    guarded: set[tuple[str, str]] = set()
    for ext in _k8s(resources, TRAFFIC_EXTENSION):
        services = [
            str(e.get("googleAPIServiceName", ""))
            for chain in items(get(ext.props, "spec.extensionChains"))
            for e in items(get(chain, "extensions"))
            if is_map(e)
        ]
        if not any(re.search(service_pattern, s) for s in services):
            continue
        for ref in items(get(ext.props, "spec.targetRefs")):
            if is_map(ref) and ref.get("kind", "Gateway") == "Gateway":
                guarded.add((str(ref.get("namespace") or _namespace(ext.props)), str(ref.get("name"))))
    return guarded


def validate_model_armor(args: StackValidationArgs, report: ReportViolation) -> None:
    if not applies_to_environment(args):
        return
    external = list(config(args, "externalClasses", list(EXTERNAL_GATEWAY_CLASSES)))
    guarded = _guarded_gateways(args.resources, str(config(args, "servicePattern", r"^modelarmor\.[a-z0-9-]+\.rep\.googleapis\.com$")))
    for gw in _k8s(args.resources, GATEWAY):
        if get(gw.props, "spec.gatewayClassName") not in external:
            continue
        name = k8s_name(gw.props, gw.name)
        if (_namespace(gw.props), name) not in guarded:
            report(
                f"Gateway {name!r} is external in a production stack but no GCPTrafficExtension calls Model Armor "
                f"for it, so prompts and responses reach the models unscreened. Fix: configure model_armor "
                f"(templates and guards) and include {name!r} in model_armor.gateways (or leave that unset: "
                "every external gateway is guarded).",
                gw.urn,
            )


POLICIES = [
    ResourceValidationPolicy(
        name="gateway-supported-class",
        description="Gateways use a GatewayClass GKE Inference Gateway supports (regional external or internal).",
        validate=validate_gateway_class,
        enforcement_level=EnforcementLevel.MANDATORY,
        severity=Severity.HIGH,
        config_schema=PolicyConfigSchema(
            {"classes": {"type": "array", "items": {"type": "string"}, "default": list(REGIONAL_GATEWAY_CLASSES)}}
        ),
    ),
    ResourceValidationPolicy(
        name="inference-pool-endpoint-picker",
        description="Every InferencePool names its endpoint picker (endpointPickerRef with a port) and an explicit failureMode.",
        validate=validate_pool_picker,
        enforcement_level=EnforcementLevel.MANDATORY,
        severity=Severity.HIGH,
        config_schema=PolicyConfigSchema(
            {"failureModes": {"type": "array", "items": {"type": "string"}, "default": ["FailOpen", "FailClose"]}}
        ),
    ),
    ResourceValidationPolicy(
        name="model-rewrite-weights-valid",
        description="InferenceModelRewrite rules have targets with integer weights from 1 to 1,000,000 (on all targets or none).",
        validate=validate_rewrite_weights,
        enforcement_level=EnforcementLevel.MANDATORY,
        severity=Severity.MEDIUM,
    ),
    StackValidationPolicy(
        name="proxy-only-subnet-per-gateway-region",
        description="Every region with a regional gateway has an ACTIVE REGIONAL_MANAGED_PROXY subnet.",
        validate=validate_proxy_only_subnets,
        enforcement_level=EnforcementLevel.MANDATORY,
        severity=Severity.HIGH,
        config_schema=PolicyConfigSchema(
            {
                "existingSubnetRegions": {
                    "type": "array", "items": {"type": "string"}, "default": [],
                    "description": "Regions whose proxy-only subnet exists outside this stack.",
                },
                "gatewayRegions": {
                    "type": "array", "items": {"type": "string"}, "default": [],
                    "description": "Gateway regions when the stack has no cluster of its own.",
                },
                "defaultRegion": {
                    "type": "string",
                    "description": "Region of subnetworks that set none (the provider's region).",
                },
            }
        ),
    ),
    StackValidationPolicy(
        name="model-armor-on-external-gateways",
        description="In production stacks every external gateway is guarded by Model Armor (a GCPTrafficExtension).",
        validate=validate_model_armor,
        enforcement_level=EnforcementLevel.MANDATORY,
        severity=Severity.CRITICAL,
        config_schema=PolicyConfigSchema(
            {
                "environments": ENVIRONMENTS_SCHEMA,
                "externalClasses": {"type": "array", "items": {"type": "string"}, "default": list(EXTERNAL_GATEWAY_CLASSES)},
                "servicePattern": {
                    "type": "string",
                    "default": r"^modelarmor\.[a-z0-9-]+\.rep\.googleapis\.com$",
                    "description": "Regex an extension's googleAPIServiceName must match to count as Model Armor.",
                },
            }
        ),
    ),
]
