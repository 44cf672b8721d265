"""The one place plugins are registered. Built by a function so no state leaks between users."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from ..errors import ConfigError
from .filters.label_selector import LabelSelectorFilter
from .filters.saturation import SaturationFilter
from .framework import Scheduler
from .pickers.max_score import MaxScorePicker
from .pickers.weighted_random import WeightedRandomPicker
from .scorers.inflight_load import InflightLoadScorer
from .scorers.kv_cache_utilization import KvCacheUtilizationScorer
from .scorers.lora_affinity import LoraAffinityScorer
from .scorers.prefix_cache import PrefixCacheScorer
from .scorers.queue import QueueScorer


@dataclass(frozen=True)
class Registry:
    filters: dict[str, type]
    scorers: dict[str, type]
    pickers: dict[str, type]

    def _make(self, kind: str, table: dict[str, type], path: str, type_: str, params: dict[str, Any]) -> Any:
        cls = table.get(type_)
        if cls is None:
            known = ", ".join(sorted(table))
            raise ConfigError(f"{path}.type: unknown {kind} type '{type_}' (known: {known})")
        try:
            p = cls.Params.model_validate(params)
        except ValidationError as e:
            detail = "; ".join(
                f"{path}.parameters.{'.'.join(str(x) for x in err['loc'])}: {err['msg']}" for err in e.errors()
            )
            raise ConfigError(detail) from None
        return cls(p)

    def validate(self, cfg: Any) -> None:
        self.build(cfg)

    def build(self, cfg: Any) -> Scheduler:
        """Build a Scheduler from a SchedulingConfig; raises ConfigError naming the config path."""
        filters = [
            self._make("filter", self.filters, f"scheduling.filters[{i}]", f.type, f.parameters)
            for i, f in enumerate(cfg.filters)
        ]
        seen: set[str] = set()
        scorers = []
        for i, s in enumerate(cfg.scorers):
            if s.type in seen:
                raise ConfigError(f"scheduling.scorers[{i}].type: duplicate scorer '{s.type}'")
            seen.add(s.type)
            scorers.append((self._make("scorer", self.scorers, f"scheduling.scorers[{i}]", s.type, s.parameters), s.weight))
        picker = self._make("picker", self.pickers, "scheduling.picker", cfg.picker.type, cfg.picker.parameters)
        return Scheduler(filters, scorers, picker)


def build_registry() -> Registry:
    def table(*classes: type) -> dict[str, type]:
        return {c.TYPE: c for c in classes}

    return Registry(
        filters=table(SaturationFilter, LabelSelectorFilter),
        scorers=table(QueueScorer, KvCacheUtilizationScorer, LoraAffinityScorer, PrefixCacheScorer, InflightLoadScorer),
        pickers=table(MaxScorePicker, WeightedRandomPicker),
    )
