"""GKE cluster and H100 node pool policies (gcp.container.Cluster / NodePool inputs)."""

from __future__ import annotations

import re
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
)

from ._common import CLUSTER, H100_ACCELERATORS, NODE_POOL, applies_to_environment, config, fmt, get, is_map, items, label

ENVIRONMENTS_SCHEMA = {
    "type": "array",
    "items": {"type": "string"},
    "default": ["production"],
    "description": "Stack environments the policy applies to (stack tag `environment`, else the stack's "
    "`inference-gateway:environment` config); ['*'] means every stack.",
}


def parse_version(text: str) -> tuple[int, int, int] | None:
    m = re.match(r"^(\d+)\.(\d+)(?:\.(\d+))?", text)
    return (int(m[1]), int(m[2]), int(m[3] or 0)) if m else None


def validate_min_version(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != CLUSTER:
        return
    floor_text = str(config(args, "minVersion", "1.32.3"))
    floor = parse_version(floor_text) or (1, 32, 3)
    who = label(args.resource_type, args.name)
    version = args.props.get("minMasterVersion")
    if not version:
        report(
            f"{who}: minMasterVersion is unset, so GKE may create a control plane older than {floor_text}, "
            f"which GKE Inference Gateway needs. Fix: set cluster.min_master_version to {floor_text} or later.",
            None,
        )
        return
    if str(version) == "latest":
        return
    got = parse_version(str(version))
    if got is None or got < floor:
        report(
            f"{who}: minMasterVersion {fmt(version)} is older than {floor_text}, the minimum for GKE Inference "
            f"Gateway. Fix: set cluster.min_master_version to {floor_text} or later.",
            None,
        )


def validate_vpc_native(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != CLUSTER:
        return
    who = label(args.resource_type, args.name)
    mode = args.props.get("networkingMode")
    if mode not in (None, "VPC_NATIVE"):
        report(
            f"{who}: networkingMode is {fmt(mode)}; GKE Inference Gateway and container-native load balancing "
            "need a VPC-native cluster. Fix: set networkingMode VPC_NATIVE (cluster.networking_mode).",
            None,
        )
        return
    policy = args.props.get("ipAllocationPolicy")
    if not is_map(policy) or not policy:
        report(
            f"{who}: ipAllocationPolicy is unset, so the cluster is not VPC-native (alias IPs). Fix: set "
            "ipAllocationPolicy with the node subnet's pod and service secondary range names.",
            None,
        )


def validate_gateway_api(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != CLUSTER:
        return
    allowed = list(config(args, "channels", ["CHANNEL_STANDARD", "CHANNEL_EXPERIMENTAL"]))
    channel = get(args.props, "gatewayApiConfig.channel")
    if channel not in allowed:
        report(
            f"{label(args.resource_type, args.name)}: gatewayApiConfig.channel is {fmt(channel)}, so the GKE "
            f"Gateway controller is off and no Gateway will be programmed. Fix: set gatewayApiConfig.channel "
            f"to {allowed[0]}.",
            None,
        )


def validate_http_load_balancing(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != CLUSTER:
        return
    if get(args.props, "addonsConfig.httpLoadBalancing.disabled") is True:
        report(
            f"{label(args.resource_type, args.name)}: addonsConfig.httpLoadBalancing.disabled is true; the "
            "Gateway controller needs the HttpLoadBalancing add-on. Fix: set "
            "addonsConfig.httpLoadBalancing.disabled to false (or drop it: the add-on is on by default).",
            None,
        )


def validate_deletion_protection(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != CLUSTER or not applies_to_environment(args):
        return
    # The provider's default is true: only an explicit false turns protection off.
    if args.props.get("deletionProtection") is False:
        report(
            f"{label(args.resource_type, args.name)}: deletionProtection is false in a production stack, so a "
            "`pulumi destroy` or a replacement deletes the cluster and every model server on it. Fix: remove "
            "cluster.deletion_protection: false from the stack config (production defaults to true).",
            None,
        )


def _h100_accelerators(args: ResourceValidationArgs) -> list[dict[str, Any]]:
    if args.resource_type != NODE_POOL:
        return []
    types = list(config(args, "acceleratorTypes", list(H100_ACCELERATORS)))
    return [a for a in items(get(args.props, "nodeConfig.guestAccelerators")) if is_map(a) and a.get("type") in types]


def validate_gpu_drivers(args: ResourceValidationArgs, report: ReportViolation) -> None:
    allowed = list(config(args, "driverVersions", ["DEFAULT", "LATEST"]))
    for acc in _h100_accelerators(args):
        version = get(acc, "gpuDriverInstallationConfig.gpuDriverVersion")
        if version not in allowed:
            report(
                f"{label(args.resource_type, args.name)}: {acc.get('type')} accelerators have gpuDriverVersion "
                f"{fmt(version)}, so nodes may come up without an NVIDIA driver and vLLM cannot see the GPUs. "
                f"Fix: set nodeConfig.guestAccelerators[].gpuDriverInstallationConfig.gpuDriverVersion to "
                f"{' or '.join(allowed)} (node_pools[].gpu_driver_version).",
                None,
            )


def validate_gpu_taint(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if not _h100_accelerators(args):
        return
    key = str(config(args, "taintKey", "nvidia.com/gpu"))
    taints = items(get(args.props, "nodeConfig.taints"))
    if not any(is_map(t) and t.get("key") == key and t.get("effect") == "NO_SCHEDULE" for t in taints):
        report(
            f"{label(args.resource_type, args.name)}: the H100 pool has no {key} NO_SCHEDULE taint, so "
            f"non-GPU pods can land on (and hold) GPU nodes. Fix: add nodeConfig.taints "
            f"[{{key: {key}, value: present, effect: NO_SCHEDULE}}].",
            None,
        )


POLICIES = [
    ResourceValidationPolicy(
        name="gke-min-version",
        description="GKE clusters run 1.32.3 or later (GKE Inference Gateway's minimum).",
        validate=validate_min_version,
        enforcement_level=EnforcementLevel.MANDATORY,
        severity=Severity.HIGH,
        config_schema=PolicyConfigSchema(
            {"minVersion": {"type": "string", "default": "1.32.3", "description": "Lowest allowed minMasterVersion."}}
        ),
    ),
    ResourceValidationPolicy(
        name="gke-vpc-native",
        description="GKE clusters are VPC-native (networkingMode VPC_NATIVE with an ipAllocationPolicy).",
        validate=validate_vpc_native,
        enforcement_level=EnforcementLevel.MANDATORY,
        severity=Severity.HIGH,
    ),
    ResourceValidationPolicy(
        name="gke-gateway-api-enabled",
        description="GKE clusters enable the Gateway API (gatewayApiConfig.channel).",
        validate=validate_gateway_api,
        enforcement_level=EnforcementLevel.MANDATORY,
        severity=Severity.HIGH,
        config_schema=PolicyConfigSchema(
            {
                "channels": {
                    "type": "array",
                    "items": {"type": "string"},
                    "default": ["CHANNEL_STANDARD", "CHANNEL_EXPERIMENTAL"],
                    "description": "Accepted Gateway API channels; the first is the one suggested.",
                }
            }
        ),
    ),
    ResourceValidationPolicy(
        name="gke-http-load-balancing-enabled",
        description="GKE clusters keep the HttpLoadBalancing add-on on (the Gateway controller needs it).",
        validate=validate_http_load_balancing,
        enforcement_level=EnforcementLevel.MANDATORY,
        severity=Severity.HIGH,
    ),
    ResourceValidationPolicy(
        name="gke-deletion-protection",
        description="Production GKE clusters keep deletion protection on.",
        validate=validate_deletion_protection,
        enforcement_level=EnforcementLevel.MANDATORY,
        severity=Severity.CRITICAL,
        config_schema=PolicyConfigSchema({"environments": ENVIRONMENTS_SCHEMA}),
    ),
    ResourceValidationPolicy(
        name="gpu-pool-drivers-installed",
        description="H100 node pools install the NVIDIA driver (gpuDriverVersion DEFAULT or LATEST).",
        validate=validate_gpu_drivers,
        enforcement_level=EnforcementLevel.MANDATORY,
        severity=Severity.HIGH,
        config_schema=PolicyConfigSchema(
            {
                "acceleratorTypes": {"type": "array", "items": {"type": "string"}, "default": list(H100_ACCELERATORS)},
                "driverVersions": {"type": "array", "items": {"type": "string"}, "default": ["DEFAULT", "LATEST"]},
            }
        ),
    ),
    ResourceValidationPolicy(
        name="gpu-pool-tainted",
        description="H100 node pools carry the nvidia.com/gpu NO_SCHEDULE taint, keeping other pods off GPUs.",
        validate=validate_gpu_taint,
        enforcement_level=EnforcementLevel.MANDATORY,
        severity=Severity.MEDIUM,
        config_schema=PolicyConfigSchema(
            {
                "acceleratorTypes": {"type": "array", "items": {"type": "string"}, "default": list(H100_ACCELERATORS)},
                "taintKey": {"type": "string", "default": "nvidia.com/gpu"},
            }
        ),
    ),
]
