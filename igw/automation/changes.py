"""What an engine operation changes, per resource, in a form `igw diff` can be compared with.

`step_changes` reads the engine's step events (one `resourcePreEvent` per resource step, with
the provider's detailed diff); `synth_changes` reads an `igw diff` of two mock renders. Both give
`{urn: Change(op, keys)}` for resources that are created, updated, replaced or deleted, where
`keys` are the top-level inputs that differ (`spec`, `data`, `metadata`...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from pulumi import automation as auto

from igw.diff import SynthDiff

ROOT_STACK = "pulumi:pulumi:Stack"
"""Not a resource of the program (igw synth records none); its outputs are compared apart."""
CHANGING_OPS = {"create", "update", "delete", "replace", "create-replacement", "delete-replaced"}


@dataclass(frozen=True)
class StepChange:
    """One resource step of an engine run."""

    urn: str
    type: str
    op: str
    diffs: tuple[str, ...] = ()
    """Top-level properties that differ (update/replace)."""
    detailed: dict[str, str] = field(default_factory=dict)
    """Property path (`spec.rules[0].targets[0].weight`) -> add | update | delete (…-replace)."""


@dataclass(frozen=True)
class Change:
    op: str
    """create | update | replace | delete"""
    keys: frozenset[str] = frozenset()


def step_changes(events: Iterable[auto.EngineEvent]) -> list[StepChange]:
    out = []
    for event in events:
        pre = event.resource_pre_event
        if pre is None:
            continue
        m = pre.metadata
        detailed = {path: d.diff_kind.value for path, d in (m.detailed_diff or {}).items()}
        out.append(StepChange(m.urn, m.type, m.op.value, tuple(m.diffs or ()), detailed))
    return out


def engine_changes(steps: Iterable[StepChange]) -> dict[str, Change]:
    """Per URN, what the engine does to the program's resources; replacement steps fold into
    one `replace`."""
    out: dict[str, Change] = {}
    for s in steps:
        if s.op not in CHANGING_OPS or s.type == ROOT_STACK:
            continue
        op = "replace" if s.op in ("replace", "create-replacement", "delete-replaced") else s.op
        keys = frozenset(k.split(".")[0].split("[")[0] for k in (s.diffs or s.detailed)) if op in ("update", "replace") else frozenset()
        prev = out.get(s.urn)
        out[s.urn] = Change(op, keys | (prev.keys if prev else frozenset()))
    return out


def synth_changes(d: SynthDiff) -> dict[str, Change]:
    """Per URN, what `igw diff` reports between two renders."""
    out = {r["urn"]: Change("create") for r in d.added}
    out.update({r["urn"]: Change("delete") for r in d.removed})
    for c in d.changed:
        out[c.urn] = Change("update", frozenset(path.split(".")[0].split("[")[0] for path, _, _ in c.fields))
    return out
