"""Shared fixtures: stacks rendered once per session through the one mock engine."""

from __future__ import annotations

import functools
from typing import Any

import pytest

from igw.engine import Synthesis, run_program
from igw.stackfile import available_stacks, read_stack

STACKS = available_stacks()
EXISTING_CLUSTER_STACKS = [s for s in STACKS if (read_stack(s).get("inference-gateway:cluster") or {}).get("existing") is not None]
"""Stacks that deploy onto a cluster they do not create (cluster.existing): no GCP infrastructure."""
CREATED_CLUSTER_STACKS = [s for s in STACKS if s not in EXISTING_CLUSTER_STACKS]


@functools.lru_cache(maxsize=None)
def rendered(stack: str) -> Synthesis:
    """Render a committed stack (cached: the program is deterministic)."""
    return run_program(stack, read_stack(stack))


def render_with(stack: str, **overrides: Any) -> Synthesis:
    """Render a committed stack with some `inference-gateway:<key>` values replaced."""
    config = dict(read_stack(stack))
    for key, value in overrides.items():
        config[f"inference-gateway:{key}"] = value
    return run_program(f"{stack}-variant", config)


@pytest.fixture(params=STACKS)
def any_stack(request) -> Synthesis:
    return rendered(request.param)


@pytest.fixture(params=CREATED_CLUSTER_STACKS)
def created_cluster_stack(request) -> Synthesis:
    """A stack that creates its GCP infrastructure (APIs, network, cluster, node pools)."""
    return rendered(request.param)


@pytest.fixture
def dev() -> Synthesis:
    return rendered("dev")


@pytest.fixture
def prod() -> Synthesis:
    return rendered("prod")


@pytest.fixture
def local() -> Synthesis:
    return rendered("local")


def k8s_objects(synthesis: Synthesis, kind: str) -> list[dict[str, Any]]:
    return [o for o in synthesis.kubernetes_objects() if o.get("kind") == kind]


def k8s_object(synthesis: Synthesis, kind: str, name: str) -> dict[str, Any]:
    found = [o for o in k8s_objects(synthesis, kind) if o["metadata"].get("name") == name]
    assert len(found) == 1, f"expected one {kind} {name!r}, found {[o['metadata'].get('name') for o in k8s_objects(synthesis, kind)]}"
    return found[0]
