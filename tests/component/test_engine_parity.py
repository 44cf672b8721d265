"""What running the byo stack through the real engine (tests/real_engine) showed that the mock
engine did not, kept as offline checks on every committed stack:

- URNs: Pulumi's MockMonitor kept only the parent's last type (and prefixed the stack's), so
  `igw synth`'s URNs matched no real state below depth two; igw/engine.py now builds them as the
  engine does, and `igw diff` matches resources by URN.
- An empty `metadata.labels: {}` on a custom resource is dropped from what the provider stores,
  so every preview showed it being added again (two PodMonitorings "to update" with no change).
- ConfigMaps with fixed names were replaced (deleted, then created) on every data change.
"""

from __future__ import annotations

import pytest

from tests.conftest import STACKS, rendered


@pytest.mark.parametrize("stack", STACKS)
def test_urns_carry_the_whole_parent_type_chain(stack):
    synthesis = rendered(stack)
    by_urn = {r.urn: r for r in synthesis.resources}
    for r in synthesis.resources:
        chain, parent = [r.type], r.parent
        while parent:
            chain.insert(0, by_urn[parent].type)
            parent = by_urn[parent].parent
        assert r.urn == f"urn:pulumi:{stack}::inference-gateway::{'$'.join(chain)}::{r.name}"


@pytest.mark.parametrize("stack", STACKS)
def test_no_object_declares_an_empty_label_or_annotation_map(stack):
    empty = [f"{o['kind']} {o['metadata'].get('name')}: metadata.{key}"
             for o in rendered(stack).kubernetes_objects() for key in ("labels", "annotations")
             if o["metadata"].get(key) == {}]
    assert empty == []


@pytest.mark.parametrize("stack", STACKS)
def test_configmaps_are_updated_in_place(stack):
    provider = rendered(stack).one("pulumi:providers:kubernetes")
    assert provider.inputs["enableConfigMapMutable"] == "true", provider.urn
