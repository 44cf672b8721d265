"""Helpers for policy tests: run one policy of the pack, engine-free, on rendered resources.

Resources come from real renders (`rendered()` / `render_with()` of tests/conftest.py); a test
that needs a violating resource mutates a deep copy of a rendered one (`mutate`).
"""

from __future__ import annotations

import copy
from typing import Any, Iterable

from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    StackValidationArgs,
)
from pulumi_policy.proxy import unknown_checking_proxy

from igw.engine import Resource, Synthesis
from igw.policy_checks import OFFLINE_TAGS, policies_module

POLICIES = {p.name: p for p in policies_module().POLICIES}


def _opts(parent: str | None = None) -> PolicyResourceOptions:
    return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], parent)


def _defaults(policy: Any) -> dict[str, Any]:
    schema = policy.config_schema
    return {k: v["default"] for k, v in (schema.properties if schema else {}).items() if "default" in v}


def tags(environment: str) -> dict[str, str]:
    return {**OFFLINE_TAGS, "environment": environment}


def validate(policy: str, resource: Resource, environment: str = "production", **config: Any) -> list[str]:
    """Run one resource policy on one resource, as `pulumi preview --policy-pack` would."""
    p = POLICIES[policy]
    args = ResourceValidationArgs(
        resource.type,
        unknown_checking_proxy(copy.deepcopy(resource.inputs)),
        resource.urn,
        resource.name,
        _opts(resource.parent or None),
        None,
        {**_defaults(p), **config},
        tags(environment),
    )
    messages: list[str] = []
    p.validate(args, lambda message, urn=None: messages.append(message))
    return messages


def validate_stack(policy: str, resources: Iterable[Resource] | Synthesis, environment: str = "production", **config: Any) -> list[tuple[str, str]]:
    """Run one stack policy; returns (message, urn) pairs."""
    if isinstance(resources, Synthesis):
        resources = resources.resources
    p = POLICIES[policy]
    policy_resources = [
        PolicyResource(r.type, unknown_checking_proxy(copy.deepcopy(r.inputs)), r.urn, r.name, _opts(r.parent or None), None, None, [], {})
        for r in resources
    ]
    found: list[tuple[str, str]] = []
    p.validate(StackValidationArgs(policy_resources, {**_defaults(p), **config}, tags(environment)), lambda m, urn=None: found.append((m, urn or "")))
    return found


def mutate(resource: Resource, path: str, value: Any) -> Resource:
    """A copy of `resource` with inputs at dotted `path` set to `value` (None deletes it).
    List items are addressed by index: `spec.template.spec.containers.0.livenessProbe`."""
    inputs = copy.deepcopy(resource.inputs)
    *parents, last = path.split(".")
    cur: Any = inputs
    for key in parents:
        if isinstance(cur, list):
            cur = cur[int(key)]
        else:
            cur = cur.setdefault(key, {})
    if isinstance(cur, list):
        cur[int(last)] = value
    elif value is None:
        cur.pop(last, None)
    else:
        cur[last] = value
    return Resource(resource.urn, resource.type, resource.name, resource.parent, resource.custom, inputs, list(resource.dependencies))


def replace(synthesis: Synthesis, *resources: Resource, drop: Iterable[Resource] = ()) -> list[Resource]:
    """The synthesis's resources with some replaced (same URN) and some dropped."""
    by_urn = {r.urn: r for r in resources}
    dropped = {r.urn for r in drop}
    return [by_urn.get(r.urn, r) for r in synthesis.resources if r.urn not in dropped]
