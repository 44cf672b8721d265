"""`igw policy`: run the policy pack's own policies offline over `igw synth` output.

Each recorded resource becomes the `ResourceValidationArgs` pulumi-policy would build during
`pulumi preview --policy-pack policy` (same camelCase inputs, wrapped in the same read-only
proxies), the whole stack one `StackValidationArgs`. Enforcement levels and policy config come
from the file format Pulumi uses for `--policy-pack-config`:

    {"all": "advisory", "gke-min-version": {"enforcementLevel": "mandatory", "minVersion": "1.33.0"}}

Offline the stack's environment (what production-only policies key on) is its `environment`
config, passed as the `environment` stack tag, the tag a Pulumi Cloud stack would carry.
"""

from __future__ import annotations

import copy
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

ROOT = Path(__file__).resolve().parent.parent
POLICY_DIR = ROOT / "policy"
LEVELS = ("advisory", "mandatory", "remediate", "disabled")
OFFLINE_TAGS = {"pulumi:project": "inference-gateway", "igw:offline": "true"}
"""Stack tags offline: `igw:offline` tells policies that secret inputs show as "[secret]" and that
the stack's environment and drain inputs come from tags and policy config (policies/_common.py)."""


def policies_module():
    """The pack's policy package (policy/inference_gateway_policies), importable from the repo."""
    if str(POLICY_DIR) not in sys.path:
        sys.path.insert(0, str(POLICY_DIR))
    import inference_gateway_policies

    return inference_gateway_policies


class PolicyConfigError(ValueError):
    """A policy config file names an unknown policy or enforcement level."""


@dataclass(frozen=True)
class Violation:
    policy: str
    level: str
    message: str
    urn: str


@dataclass
class PolicyReport:
    stack: str
    environment: str
    resources: int
    levels: dict[str, str]
    """Effective enforcement level per policy, in pack order."""
    violations: list[Violation] = field(default_factory=list)
    not_applicable: dict[str, list[str]] = field(default_factory=dict)

    @property
    def mandatory(self) -> list[Violation]:
        return [v for v in self.violations if v.level == "mandatory"]

    @property
    def advisory(self) -> list[Violation]:
        return [v for v in self.violations if v.level == "advisory"]

    @property
    def ok(self) -> bool:
        return not self.mandatory

    def messages(self, policy: str | None = None) -> list[str]:
        return [v.message for v in self.violations if policy is None or v.policy == policy]


def load_config(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise PolicyConfigError(f"{path}: not valid JSON/YAML ({err})") from None
    if not isinstance(data, dict):
        raise PolicyConfigError(f"{path}: expected a mapping of policy name -> level or settings")
    return data


def _normalize(raw: Mapping[str, Any], names: list[str]) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """Pulumi's policy config -> (level per policy name or 'all', properties per policy)."""
    levels: dict[str, str] = {}
    props: dict[str, dict[str, Any]] = {}
    for key, value in raw.items():
        if key != "all" and key not in names:
            raise PolicyConfigError(f"{key!r} is not a policy of this pack; policies: {', '.join(names)}")
        if isinstance(value, str):
            level, settings = value, {}
        elif isinstance(value, Mapping):
            settings = {k: v for k, v in value.items() if k != "enforcementLevel"}
            level = value.get("enforcementLevel")
        else:
            raise PolicyConfigError(f"{key}: expected an enforcement level or a mapping, got {value!r}")
        if level is not None:
            if level not in LEVELS:
                raise PolicyConfigError(f"{key}: enforcement level {level!r} is not one of {', '.join(LEVELS)}")
            levels[key] = level
        if settings:
            if key == "all":
                raise PolicyConfigError("all: only an enforcement level can be set for every policy")
            props[key] = settings
    return levels, props


def _defaults(policy: Any) -> dict[str, Any]:
    schema = getattr(policy, "config_schema", None)
    if schema is None:
        return {}
    return {k: copy.deepcopy(v["default"]) for k, v in schema.properties.items() if "default" in v}


def check(
    resources: Iterable[Mapping[str, Any]],
    *,
    stack: str,
    environment: str,
    config: Mapping[str, Any] | None = None,
) -> PolicyReport:
    """Run every policy over resources ({urn, type, name, parent, inputs}, as resources.json)."""
    mod = policies_module()
    from pulumi_policy import (
        PolicyCustomTimeouts,
        PolicyResource,
        PolicyResourceOptions,
        ResourceValidationArgs,
        ResourceValidationPolicy,
        StackValidationArgs,
        StackValidationPolicy,
    )
    from pulumi_policy.policy import _NotApplicableError
    from pulumi_policy.proxy import UnknownValueError, unknown_checking_proxy

    policies = list(mod.POLICIES)
    names = [p.name for p in policies]
    set_levels, settings = _normalize(config or {}, names)
    resources = list(resources)
    tags = {**OFFLINE_TAGS, "environment": environment or "development"}

    def opts(parent: str | None) -> PolicyResourceOptions:
        return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], parent or None)

    levels: dict[str, str] = {}
    for p in policies:
        default = p.enforcement_level.value if p.enforcement_level is not None else "advisory"
        level = set_levels.get(p.name) or set_levels.get("all") or default
        levels[p.name] = "mandatory" if level == "remediate" else level
    report = PolicyReport(stack=stack, environment=tags["environment"], resources=len(resources), levels=levels)

    def run(policy: Any, make_args: Any, urn: str) -> None:
        def violation(message: str, at: str | None = None) -> None:
            report.violations.append(Violation(policy.name, levels[policy.name], message, at or urn))

        try:
            policy.validate(make_args(), violation)
        except _NotApplicableError as err:
            report.not_applicable.setdefault(policy.name, []).append(err.reason or "not applicable")
        except UnknownValueError as err:
            report.not_applicable.setdefault(policy.name, []).append(err.message)

    for policy in policies:
        if levels[policy.name] == "disabled":
            continue
        cfg = {**_defaults(policy), **settings.get(policy.name, {})}
        if isinstance(policy, ResourceValidationPolicy):
            for r in resources:
                run(
                    policy,
                    lambda r=r: ResourceValidationArgs(
                        r["type"], unknown_checking_proxy(copy.deepcopy(r["inputs"])), r["urn"], r["name"],
                        opts(r.get("parent")), None, cfg, tags,
                    ),
                    r["urn"],
                )
        elif isinstance(policy, StackValidationPolicy):
            def stack_args(cfg: dict[str, Any] = cfg) -> Any:
                by_urn = {
                    r["urn"]: PolicyResource(
                        r["type"], unknown_checking_proxy(copy.deepcopy(r["inputs"])), r["urn"], r["name"],
                        opts(r.get("parent")), None, None, [], {},
                    )
                    for r in resources
                }
                for r in resources:
                    if r.get("parent") in by_urn:
                        by_urn[r["urn"]].parent = by_urn[r["parent"]]
                    for d in r.get("dependencies") or []:
                        if d in by_urn:
                            by_urn[r["urn"]].dependencies.append(by_urn[d])
                return StackValidationArgs(list(by_urn.values()), cfg, tags)

            run(policy, stack_args, "")
    return report


def stack_policy_config(stack_config: Any) -> dict[str, Any]:
    """Policy config a stack's own config implies: each model server's drain inputs (the pack reads
    the same `model_servers[].drain` from the stack config under the engine)."""
    drain = {
        s.name: {
            "maxOutputTokens": s.drain.max_output_tokens,
            "timePerOutputTokenMs": s.drain.time_per_output_token_ms,
            "prefillOverhead": s.drain.prefill_overhead,
            "safetyFactor": s.drain.safety_factor,
        }
        for s in stack_config.model_servers
    }
    return {"model-server-graceful-drain": {"drain": drain}} if drain else {}


def merge_config(implied: Mapping[str, Any], explicit: Mapping[str, Any]) -> dict[str, Any]:
    """Explicit policy config wins over what the stack implies (per policy, per key)."""
    out: dict[str, Any] = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in implied.items()}
    for key, value in explicit.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = {**out[key], **value}
        elif isinstance(value, str) and isinstance(out.get(key), Mapping):
            out[key] = {**out[key], "enforcementLevel": value}
        else:
            out[key] = value
    return out


def check_stack(
    stack: str,
    resources: Iterable[Mapping[str, Any]],
    config: Mapping[str, Any] | None = None,
    environment: str | None = None,
) -> PolicyReport:
    """`check` with what the stack file says: its environment and its model servers' drain inputs."""
    from .stackfile import validate_stack

    cfg = validate_stack(stack)
    return check(
        resources,
        stack=stack,
        environment=environment or cfg.environment,
        config=merge_config(stack_policy_config(cfg), config or {}),
    )


def resources_of(synthesis: Any) -> list[dict[str, Any]]:
    """A Synthesis's resources in resources.json form (plus dependencies)."""
    return [{**r.to_json(), "dependencies": list(r.dependencies)} for r in synthesis.resources]


def load_resources(directory: Path) -> list[dict[str, Any]]:
    path = directory / "resources.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; run `igw synth --stack NAME --out {directory}` first")
    return json.loads(path.read_text())


def format_report(report: PolicyReport, descriptions: Mapping[str, str] | None = None) -> str:
    """Violations grouped by policy (pack order), with enforcement levels, then a summary."""
    lines = [
        f"Policy pack inference-gateway-guardrails: stack {report.stack} "
        f"(environment {report.environment}), {report.resources} resources, {len(report.levels)} policies",
        "",
    ]
    by_policy: dict[str, list[Violation]] = {}
    for v in report.violations:
        by_policy.setdefault(v.policy, []).append(v)
    for name, level in report.levels.items():
        found = by_policy.get(name, [])
        if level == "disabled":
            mark = "skip"
        elif not found:
            mark = "pass"
        else:
            mark = "FAIL" if level == "mandatory" else "warn"
        suffix = f" ({len(found)} violation{'s' if len(found) != 1 else ''})" if found else ""
        lines.append(f"  {mark:<4} {name} [{level}]{suffix}")
        if found and descriptions and name in descriptions:
            lines.append(f"         {descriptions[name]}")
        for v in found:
            lines.append(f"         - {v.message}")
    lines.append("")
    verdict = "FAILED" if report.mandatory else "passed"
    lines.append(
        f"{len(report.mandatory)} mandatory and {len(report.advisory)} advisory violation(s): policy check {verdict}"
    )
    return "\n".join(lines)


def descriptions() -> dict[str, str]:
    return {p.name: p.description for p in policies_module().POLICIES}
