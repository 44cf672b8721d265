"""Kubernetes workload policies: model servers (pods requesting nvidia.com/gpu), the endpoint
picker and every other workload, and secrets.

Model servers vs the rest: vLLM's upstream image (vllm/vllm-openai) runs as root, so running
model servers as non-root is advisory (`model-servers-run-as-non-root`); every other workload,
the endpoint picker first, must run as non-root (`workloads-run-as-non-root`, mandatory).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
)

from ._common import (
    SECRET_MASK,
    UNKNOWN,
    WORKLOAD_KINDS,
    config,
    containers,
    fmt,
    get,
    gpu_containers,
    is_gpu_workload,
    is_map,
    items,
    k8s_kind,
    k8s_name,
    label,
    number,
    offline,
    pod_spec,
    stack_config_object,
)
from .drain import DrainInputs, drain_seconds, pre_stop_seconds

def _who(args: ResourceValidationArgs) -> str:
    return label(args.resource_type, k8s_name(args.props, args.name))


def _is_workload(args: ResourceValidationArgs) -> bool:
    group, kind = k8s_kind(args.resource_type)
    return group == "apps" and kind in WORKLOAD_KINDS and pod_spec(args.props) is not None


def _excluded(args: ResourceValidationArgs) -> bool:
    return k8s_name(args.props, args.name) in set(config(args, "exclude", []))


# -- model servers ---------------------------------------------------------------------------

def validate_probes(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if not is_gpu_workload(args.resource_type, args.props) or _excluded(args):
        return
    for c in gpu_containers(pod_spec(args.props) or {}):
        missing = [p for p in ("livenessProbe", "readinessProbe", "startupProbe") if not is_map(c.get(p))]
        if missing:
            report(
                f"{_who(args)}: model server container {c.get('name')!r} has no {', '.join(missing)}. Without a "
                "startup probe a loading model is killed by the liveness probe; without readiness the gateway "
                "routes to pods that cannot serve. Fix: add all three probes on the server's health endpoint "
                "(vLLM: GET /health).",
                None,
            )


_STACK_DRAIN_KEYS = {
    "max_output_tokens": "maxOutputTokens",
    "time_per_output_token_ms": "timePerOutputTokenMs",
    "prefill_overhead": "prefillOverhead",
    "safety_factor": "safetyFactor",
}


def _stack_drain(args: ResourceValidationArgs, server: str) -> dict[str, Any]:
    """model_servers[name=server].drain from the stack's own config (what the program computed the
    grace period from), when the pack runs under the engine with the stack's config."""
    servers = stack_config_object(args, "model_servers") or []
    for s in servers if isinstance(servers, list) else []:
        if isinstance(s, dict) and s.get("name") == server and isinstance(s.get("drain"), dict):
            return {_STACK_DRAIN_KEYS[k]: v for k, v in s["drain"].items() if k in _STACK_DRAIN_KEYS}
    return {}


def drain_inputs(args: ResourceValidationArgs, pre_stop: float) -> DrainInputs:
    """Drain inputs for this model server: policy config `drain.<deployment name>`, else the stack's
    model_servers[].drain, else the policy-wide values (the program's defaults)."""
    name = k8s_name(args.props, args.name)
    per_server = config(args, "drain", {})
    own = dict(per_server.get(name) or {}) if is_map(per_server) else {}
    if not own:
        own = _stack_drain(args, name)

    def value(key: str, default: Any) -> Any:
        return own[key] if own.get(key) is not None else config(args, key, default)

    return DrainInputs(
        max_output_tokens=int(value("maxOutputTokens", 4096)),
        time_per_output_token_ms=float(value("timePerOutputTokenMs", 10.0)),
        prefill_overhead=float(value("prefillOverhead", 0.35)),
        pre_stop_seconds=pre_stop,
        safety_factor=float(value("safetyFactor", 1.5)),
    )


def validate_graceful_drain(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if not is_gpu_workload(args.resource_type, args.props) or _excluded(args):
        return
    spec = pod_spec(args.props) or {}
    servers = gpu_containers(spec)
    waits = [pre_stop_seconds(c) for c in servers]
    for c, wait in zip(servers, waits):
        if wait is None:
            report(
                f"{_who(args)}: model server container {c.get('name')!r} has no preStop hook, so it stops taking "
                "requests on SIGTERM while the load balancer still sends it traffic. Fix: add "
                "lifecycle.preStop.sleep.seconds (30 s suits GKE's regional load balancers).",
                None,
            )
    pre_stop = max([w for w in waits if w is not None], default=0.0)
    needed = drain_seconds(drain_inputs(args, pre_stop))
    grace = number(spec.get("terminationGracePeriodSeconds"))
    grace_shown = fmt(grace) if grace is not None else "unset (30 s)"
    if (grace if grace is not None else 30.0) < needed:
        d = drain_inputs(args, pre_stop)
        report(
            f"{_who(args)}: terminationGracePeriodSeconds is {grace_shown} but draining takes {needed} s "
            f"(({d.max_output_tokens} tokens x {fmt(d.time_per_output_token_ms)} ms x {fmt(1 + d.prefill_overhead)} "
            f"+ {fmt(pre_stop)} s preStop) x {fmt(d.safety_factor)}, rounded up to 10 s), so in-flight requests "
            f"are cut off on every rollout. Fix: set terminationGracePeriodSeconds to at least {needed} "
            "(model_servers[].drain).",
            None,
        )


# -- every workload --------------------------------------------------------------------------

def runs_as_non_root(pod: Mapping[str, Any], container: Mapping[str, Any]) -> bool:
    def setting(key: str) -> Any:
        value = get(container, f"securityContext.{key}")
        return get(pod, f"securityContext.{key}") if value is None else value

    user = number(setting("runAsUser"))
    if user is not None:
        return user > 0
    return setting("runAsNonRoot") is True


def _root_containers(args: ResourceValidationArgs) -> list[str]:
    spec = pod_spec(args.props) or {}
    return [str(c.get("name")) for c in containers(spec) if not runs_as_non_root(spec, c)]


def validate_workload_non_root(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if not _is_workload(args) or is_gpu_workload(args.resource_type, args.props) or _excluded(args):
        return
    root = _root_containers(args)
    if root:
        report(
            f"{_who(args)}: container(s) {', '.join(repr(n) for n in root)} may run as root. Fix: set "
            "securityContext.runAsNonRoot: true and a non-zero runAsUser on the pod or each container.",
            None,
        )


def validate_model_server_non_root(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if not is_gpu_workload(args.resource_type, args.props) or _excluded(args):
        return
    root = _root_containers(args)
    if root:
        report(
            f"{_who(args)}: container(s) {', '.join(repr(n) for n in root)} may run as root (the upstream vLLM "
            "image does). Fix: use an image with a non-root user and set securityContext.runAsNonRoot: true "
            "with its runAsUser.",
            None,
        )


def _missing_requests(args: ResourceValidationArgs, sidecars: bool) -> list[tuple[str, list[str]]]:
    wanted = list(config(args, "resources", ["cpu", "memory"]))
    spec = pod_spec(args.props) or {}
    chosen = (
        [c for c in items(spec.get("initContainers")) if is_map(c) and c.get("restartPolicy") == "Always"]
        if sidecars
        else items(spec.get("containers"))
    )
    out = []
    for c in chosen:
        requests = get(c, "resources.requests") or {}
        missing = [r for r in wanted if r not in requests]
        if missing:
            out.append((str(c.get("name")), missing))
    return out


def validate_resource_requests(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if not _is_workload(args) or _excluded(args):
        return
    for name, missing in _missing_requests(args, sidecars=False):
        report(
            f"{_who(args)}: container {name!r} requests no {' or '.join(missing)}, so the scheduler can pack it "
            f"anywhere and it is first to be evicted. Fix: set resources.requests.{{{', '.join(missing)}}}.",
            None,
        )


def validate_sidecar_requests(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if not _is_workload(args) or _excluded(args):
        return
    for name, missing in _missing_requests(args, sidecars=True):
        report(
            f"{_who(args)}: sidecar {name!r} (initContainers, restartPolicy: Always) requests no "
            f"{' or '.join(missing)}, so the pod's scheduling ignores what it uses. Fix: set "
            f"resources.requests.{{{', '.join(missing)}}} on the sidecar.",
            None,
        )


# -- secrets ---------------------------------------------------------------------------------

def _is_masked(value: Any) -> bool:
    try:
        from pulumi_policy.secret import Secret
    except Exception:  # pragma: no cover
        Secret = ()  # type: ignore[assignment]
    return value in (SECRET_MASK, UNKNOWN) or isinstance(value, Secret)


def validate_no_plaintext_secrets(args: ResourceValidationArgs, report: ReportViolation) -> None:
    group, kind = k8s_kind(args.resource_type)
    if (group, kind) == ("", "Secret"):
        # Under the engine pulumi-policy 1.21 hands Python packs secret values already unwrapped, so
        # whether Secret data came from a Pulumi secret is visible offline only ("[secret]").
        if not offline(args):
            return
        for field in ("stringData", "data"):
            values = args.props.get(field)
            if values is None or _is_masked(values):
                continue  # absent, or the whole map is one secret
            plain = sorted(k for k, v in values.items() if not _is_masked(v)) if is_map(values) else ["(all)"]
            if plain:
                report(
                    f"{_who(args)}: {field} key(s) {', '.join(plain)} are plain values in the program, so they are "
                    "stored unencrypted in the Pulumi state and visible in previews. Fix: pass them as Pulumi "
                    "secrets (`pulumi config set --secret`, read with require_secret / Output.secret).",
                    None,
                )
        return
    spec = pod_spec(args.props)
    if spec is None:
        return
    pattern = re.compile(str(config(args, "envNamePattern", r"TOKEN|KEY|SECRET|PASSWORD")), re.IGNORECASE)
    allowed = set(config(args, "allowEnvNames", []))
    all_containers = [*items(spec.get("initContainers")), *items(spec.get("containers"))]
    for c in all_containers:
        mounted = [str(m.get("mountPath")).rstrip("/") + "/" for m in items(c.get("volumeMounts")) if is_map(m)]
        for env in items(c.get("env")):
            name, value = str(env.get("name", "")), env.get("value")
            if name in allowed or not pattern.search(name) or value in (None, ""):
                continue
            if isinstance(value, str) and any(value.startswith(m) for m in mounted):
                continue  # a path into a mounted volume (HF_TOKEN_PATH): the secret is a file
            what = "a Pulumi secret written into the pod spec" if _is_masked(value) else "a literal value"
            report(
                f"{_who(args)}: container {c.get('name')!r} sets env {name} to {what}; anyone who can read the "
                f"{kind} sees it. Fix: mount it from a Kubernetes Secret as a file and point the variable the image "
                "reads for a token path at it (HF_TOKEN_PATH), or use env[].valueFrom.secretKeyRef.",
                None,
            )


EXCLUDE_SCHEMA = {
    "type": "array",
    "items": {"type": "string"},
    "default": [],
    "description": "Workload names (metadata.name) the policy skips.",
}

POLICIES = [
    ResourceValidationPolicy(
        name="model-server-probes",
        description="Model servers (pods requesting nvidia.com/gpu) have liveness, readiness and startup probes.",
        validate=validate_probes,
        enforcement_level=EnforcementLevel.MANDATORY,
        severity=Severity.HIGH,
        config_schema=PolicyConfigSchema({"exclude": EXCLUDE_SCHEMA}),
    ),
    ResourceValidationPolicy(
        name="model-server-graceful-drain",
        description="Model servers have a preStop hook and a terminationGracePeriodSeconds that covers the drain time.",
        validate=validate_graceful_drain,
        enforcement_level=EnforcementLevel.MANDATORY,
        severity=Severity.HIGH,
        config_schema=PolicyConfigSchema(
            {
                "exclude": EXCLUDE_SCHEMA,
                "maxOutputTokens": {"type": "integer", "default": 4096, "minimum": 1},
                "timePerOutputTokenMs": {"type": "number", "default": 10.0, "exclusiveMinimum": 0},
                "prefillOverhead": {"type": "number", "default": 0.35, "minimum": 0},
                "safetyFactor": {"type": "number", "default": 1.5, "minimum": 1},
                "drain": {
                    "type": "object",
                    "default": {},
                    "description": "Per model server (Deployment name): {maxOutputTokens, timePerOutputTokenMs, "
                    "prefillOverhead, safetyFactor}. Default: the stack's model_servers[].drain.",
                },
            }
        ),
    ),
    ResourceValidationPolicy(
        name="workloads-run-as-non-root",
        description="Workloads other than GPU model servers (the endpoint picker, ...) run as non-root.",
        validate=validate_workload_non_root,
        enforcement_level=EnforcementLevel.MANDATORY,
        severity=Severity.HIGH,
        config_schema=PolicyConfigSchema({"exclude": EXCLUDE_SCHEMA}),
    ),
    ResourceValidationPolicy(
        name="model-servers-run-as-non-root",
        description="GPU model servers run as non-root (advisory: the upstream vLLM image runs as root).",
        validate=validate_model_server_non_root,
        enforcement_level=EnforcementLevel.ADVISORY,
        severity=Severity.MEDIUM,
        config_schema=PolicyConfigSchema({"exclude": EXCLUDE_SCHEMA}),
    ),
    ResourceValidationPolicy(
        name="workloads-request-resources",
        description="Every container of a workload (the picker, model servers, ...) requests CPU and memory.",
        validate=validate_resource_requests,
        enforcement_level=EnforcementLevel.MANDATORY,
        severity=Severity.MEDIUM,
        config_schema=PolicyConfigSchema(
            {
                "exclude": EXCLUDE_SCHEMA,
                "resources": {"type": "array", "items": {"type": "string"}, "default": ["cpu", "memory"]},
            }
        ),
    ),
    ResourceValidationPolicy(
        name="sidecars-request-resources",
        description="Native sidecars (e.g. the LoRA adapter syncer) request CPU and memory.",
        validate=validate_sidecar_requests,
        enforcement_level=EnforcementLevel.MANDATORY,
        severity=Severity.LOW,
        config_schema=PolicyConfigSchema(
            {
                "exclude": EXCLUDE_SCHEMA,
                "resources": {"type": "array", "items": {"type": "string"}, "default": ["cpu", "memory"]},
            }
        ),
    ),
    ResourceValidationPolicy(
        name="no-plaintext-secrets",
        description="Secret data comes from Pulumi secrets, and no container sets a token/key/password env value literally.",
        validate=validate_no_plaintext_secrets,
        enforcement_level=EnforcementLevel.MANDATORY,
        severity=Severity.CRITICAL,
        config_schema=PolicyConfigSchema(
            {
                "envNamePattern": {"type": "string", "default": "TOKEN|KEY|SECRET|PASSWORD"},
                "allowEnvNames": {"type": "array", "items": {"type": "string"}, "default": []},
            }
        ),
    ),
]
