"""Virtual-time scenario files (`kind: evaluation | search`), validated once with pydantic.

Errors name the YAML path, the bad value and what is allowed, e.g.
`evaluation.yaml: workloads[3].workload.type: Input should be 'sharegpt', 'shared_prefix', ...`.
Picker configs are validated by the picker's own `load_config`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from .scenario import SCENARIO_DIR, ScenarioError

WorkloadType = Literal["sharegpt", "shared_prefix", "lora", "burst", "long_context", "priority_mix", "multi_turn"]
REQUIRED_PARAMS: dict[str, tuple[str, ...]] = {
    "shared_prefix": ("num_groups", "num_prompts_per_group", "system_prompt_len", "question_len", "output_len"),
    "lora": ("num_adapters",),
    "burst": ("burst_every_s", "burst_size"),
    "long_context": ("num_docs", "doc_tokens_min", "doc_tokens_max"),
    "priority_mix": ("classes",),
    "multi_turn": ("turns_min", "turns_max"),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Spec(_Strict):
    """A whole scenario file: knows where it was read from."""

    _path: Path = PrivateAttr(default=SCENARIO_DIR / "unknown.yaml")

    @property
    def path(self) -> Path:
        return self._path

    @property
    def folder(self) -> Path:
        return self._path.parent


class Slow(_Strict):
    count: int = Field(ge=1)
    factor: float = Field(gt=1.0)


class Cluster(_Strict):
    replicas: int = Field(ge=1, le=1024)
    num_gpu_blocks: int | None = Field(default=None, gt=0)
    block_size: int = Field(default=16, gt=0)
    max_num_seqs: int = Field(default=256, gt=0)
    max_num_batched_tokens: int = Field(default=8192, gt=0)
    max_loras: int | None = Field(default=None, gt=0)
    max_cpu_loras: int | None = Field(default=None, gt=0)
    slow: Slow | None = None
    seed: int = 0


class Workload(_Strict):
    type: WorkloadType
    rate: float = Field(gt=0)
    duration_s: float = Field(gt=0)
    warmup_s: float = Field(default=0.0, ge=0)
    drain_s: float = Field(default=120.0, gt=0)
    seed: int = 1
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _params(self) -> Workload:
        missing = [k for k in REQUIRED_PARAMS.get(self.type, ()) if k not in self.params]
        if missing:
            raise ValueError(f"params: {self.type} needs {', '.join(missing)}")
        if self.warmup_s >= self.duration_s:
            raise ValueError(f"warmup_s {self.warmup_s} must be shorter than duration_s {self.duration_s}")
        return self


class Slo(_Strict):
    ttft_s: float = Field(gt=0)
    tpot_s: float = Field(gt=0)


class Cell(_Strict):
    """One workload of the evaluation: a family, in the training or the held-out set."""

    name: str
    set: Literal["training", "held_out"]
    family: str
    description: str = ""
    cluster: dict[str, Any] = Field(default_factory=dict)   # merged over the spec's cluster
    workload: Workload
    slo: Slo


class Strategy(_Strict):
    name: str
    type: Literal["round-robin", "least-request", "picker", "oracle"]
    config: dict[str, Any] | None = None
    config_file: str | None = None
    description: str = ""

    def picker_config(self, directory: Path = SCENARIO_DIR) -> dict[str, Any]:
        if self.config_file:
            return yaml.safe_load((directory / self.config_file).read_text()) or {}
        return dict(self.config or {})

    def as_run_strategy(self, directory: Path = SCENARIO_DIR) -> dict[str, Any]:
        return {"type": self.type, "config": self.picker_config(directory) if self.type == "picker" else None}


class Scrape(_Strict):
    # None: each picker strategy scrapes at its own config's scrape.interval_ms (as deployed).
    interval_ms: float | None = Field(default=None, gt=0)
    latency_ms: float = Field(default=1, ge=0)

    @model_validator(mode="after")
    def _latency(self) -> Scrape:
        if self.interval_ms is not None and self.latency_ms >= self.interval_ms:
            raise ValueError(f"latency_ms {self.latency_ms} must be below interval_ms {self.interval_ms}")
        return self


class Evaluation(_Spec):
    name: str
    kind: Literal["evaluation"]
    description: str = ""
    order: int = 100
    seeds: int = Field(ge=2)
    scrape: Scrape = Field(default_factory=Scrape)
    cluster: Cluster
    reference: str        # strategy name of the reference picker's weights
    candidate: str        # strategy name of our shipped default
    strategies: list[Strategy]
    workloads: list[Cell]

    @model_validator(mode="after")
    def _names(self) -> Evaluation:
        names = [s.name for s in self.strategies]
        for role in ("reference", "candidate"):
            if getattr(self, role) not in names:
                raise ValueError(f"{role}: {getattr(self, role)!r} is not a strategy (have: {', '.join(names)})")
        cells = [c.name for c in self.workloads]
        dup = sorted({c for c in cells if cells.count(c) > 1})
        if dup:
            raise ValueError(f"workloads: duplicate names {dup}")
        for i, c in enumerate(self.workloads):
            Cluster.model_validate({**self.cluster.model_dump(), **c.cluster})
        if not any(c.set == "held_out" for c in self.workloads) or not any(c.set == "training" for c in self.workloads):
            raise ValueError("workloads: both a training and a held_out set are required")
        return self

    def cluster_for(self, cell: Cell) -> dict[str, Any]:
        return Cluster.model_validate({**self.cluster.model_dump(), **cell.cluster}).model_dump()

    def cells(self, which: str | None = None) -> list[Cell]:
        return [c for c in self.workloads if which is None or c.set == which]

    def run_strategy(self, strategy: Strategy) -> dict[str, Any]:
        """The strategy as vtime.run takes it (picker config files read from the spec's folder)."""
        return strategy.as_run_strategy(self.folder)

    def picker_config(self, strategy: Strategy) -> dict[str, Any]:
        return strategy.picker_config(self.folder)


class Candidate(_Strict):
    name: str
    config: dict[str, Any]


class Search(_Spec):
    """Weight search over `candidates` on the evaluation's *training* set only."""

    name: str
    kind: Literal["search"]
    description: str = ""
    order: int = 100
    evaluation: str       # file name of the evaluation spec whose training set is used
    seeds: int = Field(ge=2)
    candidates: list[Candidate]


class ScalePrompt(_Strict):
    kind: Literal["small", "shared", "unique"]
    bytes: int = Field(gt=0)
    decisions: int = Field(ge=20)


class Scale(_Spec):
    """Decision cost at growing endpoint counts and the per-endpoint scrape cost (scale.py)."""

    name: str
    kind: Literal["scale"]
    description: str = ""
    order: int = 100
    endpoints: list[int]
    prompts: list[ScalePrompt]
    rate: float = Field(default=500.0, gt=0)    # decisions per second the scrape churn is scaled to
    config: dict[str, Any] = Field(default_factory=dict)   # picker config ({} = shipped defaults)

    def picker_config(self) -> dict[str, Any]:
        return dict(self.config)


class Crosscheck(_Spec):
    """Virtual time replaying real-socket quality scenarios (crosscheck.py)."""

    name: str
    kind: Literal["crosscheck"]
    description: str = ""
    order: int = 100
    scenarios: list[str]
    strategies: list[str]
    real_repeats: int = Field(default=2, ge=1)
    virtual_seeds: int = Field(default=5, ge=2)
    scrape_latency_ms: float = Field(default=1.0, ge=0)   # real milliseconds per scrape


def _format(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e["loc"]).lstrip(".")
        parts.append(f"{path}: {e['msg'].removeprefix('Value error, ')} (got {e.get('input')!r:.80})"
                     if path else e["msg"])
    return "; ".join(parts)


def load(path: Path) -> Evaluation | Search | Scale | Crosscheck:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ScenarioError(f"{path.name}: {e}") from e
    kind = data.get("kind") if isinstance(data, dict) else None
    model = {"evaluation": Evaluation, "search": Search, "scale": Scale, "crosscheck": Crosscheck}.get(kind)
    if model is None:
        raise ScenarioError(f"{path.name}: kind: {kind!r} is not one of ['evaluation', 'search', 'scale', 'crosscheck']")
    try:
        spec = model.model_validate(data)
    except ValidationError as e:
        raise ScenarioError(f"{path.name}: {_format(e)}") from None
    spec._path = path
    _check_picker_configs(spec, path)
    return spec


def _check_picker_configs(spec: Evaluation | Search | Scale | Crosscheck, path: Path) -> None:
    from endpoint_picker.config import load_config
    from endpoint_picker.errors import ConfigError

    configs: list[tuple[str, dict[str, Any]]] = []
    if isinstance(spec, Evaluation):
        for i, s in enumerate(spec.strategies):
            if s.type != "picker":
                continue
            try:
                configs.append((f"strategies[{i}]", s.picker_config(path.parent)))
            except (OSError, yaml.YAMLError) as e:
                raise ScenarioError(f"{path.name}: strategies[{i}]: cannot read {s.config_file}: {e}") from None
    elif isinstance(spec, Search):
        configs = [(f"candidates[{i}].config", c.config) for i, c in enumerate(spec.candidates)]
    elif isinstance(spec, Scale):
        configs = [("config", spec.config)]
    for where, cfg in configs:
        try:
            load_config(cfg)
        except ConfigError as e:
            raise ScenarioError(f"{path.name}: {where}: {e}") from None
