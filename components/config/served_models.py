"""Served models a client can address directly (seeds 000 and 002), derived from the config.

The config validates them (distinct names per gateway) and the route builders render them
(`/served-models/<name>/invocations`, `x-deployed-model-id: <name>`): one derivation for both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from .serving import ServedModelConfig

SERVED_MODELS_PREFIX = "/served-models/"


@dataclass(frozen=True)
class ServedTarget:
    """One model a client can address directly: `name` in the path / header, `model` served."""

    name: str
    model: str
    client_model: str
    pool: str

    @property
    def invocations_path(self) -> str:
        return f"{SERVED_MODELS_PREFIX}{self.name}/invocations"


def served_name(model: str) -> str:
    """A model id as a URL path segment and header value: 'meta-llama/Llama-3.1-8B' ->
    'meta-llama-llama-3-1-8b'."""
    slug = re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-")
    return slug[:63].rstrip("-") or "model"


def served_targets(models: Iterable[ServedModelConfig], pools: Iterable[str]) -> list[ServedTarget]:
    """Every directly addressable served model of these pools, in config order, deduplicated.

    A served model with targets contributes one entry per target (its `name`, e.g. seed 002
    current / challenger, or the target model's slug); one without targets contributes itself
    (an external model: served as the provider's model name).
    """
    pool_set = set(pools)
    out: list[ServedTarget] = []
    for m in models:
        if m.pool not in pool_set:
            continue
        if m.targets:
            entries = [ServedTarget(t.name or served_name(t.model), t.model, m.name, m.pool) for t in m.targets]
        elif m.external is not None:  # served as the provider's model name (the egress proxy's only model)
            entries = [ServedTarget(served_name(m.name), m.external.name, m.name, m.pool)]
        else:
            entries = [ServedTarget(served_name(m.name), m.name, m.name, m.pool)]
        for e in entries:
            if not any((o.name, o.model, o.pool) == (e.name, e.model, e.pool) for o in out):
                out.append(e)
    return out


def served_target_conflicts(targets: list[ServedTarget]) -> list[tuple[ServedTarget, ServedTarget]]:
    """Pairs that share a served name but serve different models (or pools)."""
    seen: dict[str, ServedTarget] = {}
    conflicts = []
    for t in targets:
        first = seen.setdefault(t.name, t)
        if first is not t and (first.model, first.pool) != (t.model, t.pool):
            conflicts.append((first, t))
    return conflicts
