"""Every scenario file in benchmarks/scenarios/, whatever its kind.

Kinds `overhead` and `quality` (real processes) are read by scenario.py; the virtual-time kinds
(`evaluation`, `search`, `scale`, `crosscheck`) by evalspec.py. Files named `picker-*.yaml` are
picker configs that scenarios reference, not scenarios.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from . import evalspec, scenario
from .scenario import SCENARIO_DIR, ScenarioError


def load(path: str | Path) -> Any:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ScenarioError(f"{path}: {e}") from e
    if isinstance(data, dict) and data.get("kind") in scenario.SPEC_KINDS:
        return evalspec.load(path)
    return scenario.load(path)


def discover(directory: Path = SCENARIO_DIR) -> list[Any]:
    scs = [load(p) for p in sorted(directory.glob("*.yaml")) if not p.name.startswith("picker-")]
    return sorted(scs, key=lambda s: (s.order, s.name))


def resolve(name: str, directory: Path = SCENARIO_DIR) -> list[Any]:
    if name == "all":
        return discover(directory)
    p = Path(name)
    if p.suffix in (".yaml", ".yml") and p.exists():
        return [load(p)]
    cand = directory / f"{name}.yaml"
    if cand.exists():
        return [load(cand)]
    known = ", ".join(s.name for s in discover(directory))
    raise ScenarioError(f"unknown scenario {name!r} (known: {known}, or 'all', or a path to a YAML file)")
