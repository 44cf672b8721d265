"""Scenario files: YAML in benchmarks/scenarios/, validated here with errors that name the key."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SCENARIO_DIR = Path(__file__).parent / "scenarios"
KINDS = ("overhead", "quality")
SPEC_KINDS = ("evaluation", "search", "scale", "crosscheck")   # virtual-time kinds: evalspec.py
STRATEGY_TYPES = ("envoy", "picker", "upstream-epp", "oracle", "null-processor")
ENVOY_LB = ("ROUND_ROBIN", "LEAST_REQUEST", "RANDOM")
WORKLOADS = ("sharegpt", "shared_prefix", "lora", "burst")


class ScenarioError(ValueError):
    pass


@dataclass
class Strategy:
    name: str
    type: str
    lb: str | None = None                   # envoy
    config: dict[str, Any] | None = None    # picker config (PickerConfig YAML as a dict)
    config_file: str | None = None          # picker config from a file (relative to scenarios/)
    search: bool = False                    # part of the picker config search
    tls: bool = False                       # picker: serve ext_proc over TLS (its default outside benchmarks)
    description: str = ""


@dataclass
class Scenario:
    name: str
    kind: str
    description: str
    path: Path
    cluster: dict[str, Any] = field(default_factory=dict)
    workload: dict[str, Any] = field(default_factory=dict)
    slo: dict[str, Any] = field(default_factory=dict)
    strategies: list[Strategy] = field(default_factory=list)
    overhead: dict[str, Any] = field(default_factory=dict)
    order: int = 100

    @property
    def time_scale(self) -> float:
        return float(self.cluster.get("time_scale", 1.0))


def _need(d: dict, key: str, where: str, types: type | tuple[type, ...]) -> Any:
    if key not in d:
        raise ScenarioError(f"{where}.{key}: required")
    v = d[key]
    if not isinstance(v, types):
        raise ScenarioError(f"{where}.{key}: expected {types}, got {type(v).__name__} {v!r}")
    return v


def parse(data: Any, path: Path | None = None) -> Scenario:
    if not isinstance(data, dict):
        raise ScenarioError("scenario: expected a mapping")
    allowed = {"name", "kind", "description", "cluster", "workload", "slo", "strategies", "overhead", "order"}
    extra = set(data) - allowed
    if extra:
        raise ScenarioError(f"scenario: unknown keys {sorted(extra)} (allowed: {sorted(allowed)})")
    name = _need(data, "name", "scenario", str)
    kind = _need(data, "kind", "scenario", str)
    if kind not in KINDS:
        raise ScenarioError(f"scenario.kind: {kind!r} is not one of {KINDS + SPEC_KINDS}")
    sc = Scenario(name=name, kind=kind, description=str(data.get("description", "")).strip(),
                  path=path or Path(f"{name}.yaml"), order=int(data.get("order", 100)))
    strategies = data.get("strategies") or []
    if not isinstance(strategies, list) or not strategies:
        raise ScenarioError("scenario.strategies: a non-empty list is required")
    seen = set()
    for i, s in enumerate(strategies):
        where = f"strategies[{i}]"
        if not isinstance(s, dict):
            raise ScenarioError(f"{where}: expected a mapping")
        extra = set(s) - {"name", "type", "lb", "config", "config_file", "search", "tls", "description"}
        if extra:
            raise ScenarioError(f"{where}: unknown keys {sorted(extra)}")
        st = Strategy(name=_need(s, "name", where, str), type=_need(s, "type", where, str), lb=s.get("lb"),
                      config=s.get("config"), config_file=s.get("config_file"), search=bool(s.get("search", False)),
                      tls=bool(s.get("tls", False)), description=str(s.get("description", "")))
        if st.name in seen:
            raise ScenarioError(f"{where}.name: duplicate strategy {st.name!r}")
        seen.add(st.name)
        if st.type not in STRATEGY_TYPES:
            raise ScenarioError(f"{where}.type: {st.type!r} is not one of {STRATEGY_TYPES}")
        if st.type == "envoy" and st.lb not in ENVOY_LB:
            raise ScenarioError(f"{where}.lb: {st.lb!r} is not one of {ENVOY_LB}")
        if st.type == "picker" and st.config is not None and not isinstance(st.config, dict):
            raise ScenarioError(f"{where}.config: expected a mapping (PickerConfig)")
        if st.type == "oracle" and kind != "quality":
            raise ScenarioError(f"{where}: the oracle needs simulated replicas (kind: quality)")
        if st.tls and (st.type != "picker" or kind != "overhead"):
            raise ScenarioError(f"{where}.tls: only for picker strategies of overhead scenarios")
        if st.type == "null-processor" and kind != "overhead":
            raise ScenarioError(f"{where}: the null processor makes no decision (kind: overhead only)")
        sc.strategies.append(st)
    if kind == "quality":
        sc.cluster = dict(_need(data, "cluster", "scenario", dict))
        for k in ("replicas", "time_scale"):
            _need(sc.cluster, k, "cluster", (int, float))
        if sc.cluster["time_scale"] <= 0:
            raise ScenarioError("cluster.time_scale: must be > 0")
        sc.workload = dict(_need(data, "workload", "scenario", dict))
        wt = _need(sc.workload, "type", "workload", str)
        if wt not in WORKLOADS:
            raise ScenarioError(f"workload.type: {wt!r} is not one of {WORKLOADS}")
        rate = _need(sc.workload, "rate", "workload", (int, float))
        dur = _need(sc.workload, "duration_s", "workload", (int, float))
        if rate <= 0 or dur <= 0:
            raise ScenarioError("workload.rate and workload.duration_s must be > 0")
        p = sc.workload.get("params") or {}
        if wt == "shared_prefix":
            for k in ("num_groups", "num_prompts_per_group", "system_prompt_len", "question_len", "output_len"):
                _need(p, k, "workload.params", int)
        if wt == "lora":
            _need(p, "adapters", "workload.params", list)
        if wt == "burst":
            _need(p, "burst_every_s", "workload.params", (int, float))
            _need(p, "burst_size", "workload.params", int)
        sc.slo = dict(data.get("slo") or {"ttft_s": 2.0})
    else:
        sc.overhead = dict(_need(data, "overhead", "scenario", dict))
    return sc


def load(path: str | Path) -> Scenario:
    """A scenario of kind overhead or quality (catalog.load reads every kind)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ScenarioError(f"{path}: {e}") from e
    try:
        return parse(data, path)
    except ScenarioError as e:
        raise ScenarioError(f"{path.name}: {e}") from None


def picker_config(st: Strategy, directory: Path = SCENARIO_DIR) -> dict[str, Any]:
    if st.config_file:
        return yaml.safe_load((directory / st.config_file).read_text()) or {}
    return dict(st.config or {})
