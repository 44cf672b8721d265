"""label-selector-filter: keep endpoints whose pod labels match all `match_labels`."""

from __future__ import annotations

from pydantic import Field

from ..framework import Candidate, SchedulingRequest
from ..params import Params

TYPE = "label-selector-filter"


class LabelSelectorParams(Params):
    match_labels: dict[str, str] = Field(default_factory=dict)


class LabelSelectorFilter:
    TYPE = TYPE
    Params = LabelSelectorParams

    def __init__(self, params: LabelSelectorParams | None = None) -> None:
        self.want = tuple((params or LabelSelectorParams()).match_labels.items())

    def filter(self, request: SchedulingRequest, candidates: list[Candidate]) -> list[Candidate]:
        return [c for c in candidates if all((k, v) in c.endpoint.labels for k, v in self.want)]
