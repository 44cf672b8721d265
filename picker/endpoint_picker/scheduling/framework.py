"""Plugin contracts and the scheduler that runs them.

Scores are clamped to [0, 1]; the total is sum(weight * score). A filter that would remove every
candidate is ignored (fail open). The picker returns an ordered list: primary then fallbacks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import repeat
from operator import add, mul
from typing import ClassVar, Protocol, Sequence, runtime_checkable

from ..datastore import Endpoint, InFlight, Metrics


@dataclass(slots=True)
class SchedulingRequest:
    """What plugins may read about a request."""

    # The model sent to the server (after rewrite); LoRA affinity keys on it.
    target_model: str
    prompt: bytes
    request_id: str = ""
    priority: int = 0
    # Per-request scratch space for plugins (e.g. prefix hashes computed in score, used in picked).
    state: dict[str, object] = field(default_factory=dict)


@dataclass(slots=True)
class Candidate:
    endpoint: Endpoint
    metrics: Metrics
    inflight: InFlight
    # Whether `metrics` is recent enough to trust (else scorers treat it as unknown).
    fresh: bool = True
    # False when the endpoint has no engine metrics (engine none, /metrics 404, never scraped).
    has_metrics: bool = True
    # endpoint.key, copied once: scorers read it per candidate per request.
    key: str = field(init=False)

    def __post_init__(self) -> None:
        self.key = self.endpoint.key


@runtime_checkable
class Filter(Protocol):
    TYPE: ClassVar[str]

    def filter(self, request: SchedulingRequest, candidates: list[Candidate]) -> list[Candidate]: ...


@runtime_checkable
class Scorer(Protocol):
    TYPE: ClassVar[str]

    def score(self, request: SchedulingRequest, candidates: list[Candidate]) -> list[float]:
        """One score per candidate, in candidate order; values outside [0,1] are clamped."""
        ...


@runtime_checkable
class PostPick(Protocol):
    """Optional hook: told which endpoint was chosen (e.g. to record prefix-cache contents)."""

    def picked(self, request: SchedulingRequest, chosen: Candidate) -> None: ...


@runtime_checkable
class EndpointAware(Protocol):
    """Optional hook: told the current endpoint set when it changes (drop state of removed pods)."""

    def retain(self, keys: set[str]) -> None: ...


@runtime_checkable
class Picker(Protocol):
    TYPE: ClassVar[str]

    def pick(self, request: SchedulingRequest, candidates: list[Candidate], scores: list[float]) -> list[Candidate]:
        """Ordered choices, best first (at most the picker's max_endpoints)."""
        ...


@dataclass(slots=True)
class Decision:
    chosen: list[Candidate]
    candidates: list[Candidate]
    totals: list[float]

    @property
    def scores(self) -> dict[str, float]:
        """Total score per endpoint key (built on demand: the hot path never needs it)."""
        return {c.key: t for c, t in zip(self.candidates, self.totals)}


class Scheduler:
    def __init__(self, filters: Sequence[Filter], scorers: Sequence[tuple[Scorer, float]], picker: Picker):
        self.filters = list(filters)
        self.scorers = [(s, w) for s, w in scorers if w > 0]
        self.picker = picker
        self.post_pick = [s for s, _ in self.scorers if isinstance(s, PostPick)]
        self.endpoint_aware = [s for s, _ in self.scorers if isinstance(s, EndpointAware)]

    def endpoints_changed(self, keys: set[str]) -> None:
        for s in self.endpoint_aware:
            s.retain(keys)

    def schedule(self, request: SchedulingRequest, candidates: list[Candidate]) -> Decision:
        for f in self.filters:
            kept = f.filter(request, candidates)
            if kept:  # fail open: a filter may narrow the set, never empty it
                candidates = kept
        totals = [0.0] * len(candidates)
        for scorer, weight in self.scorers:
            scores = scorer.score(request, candidates)
            if scores and 0.0 <= min(scores) and max(scores) <= 1.0:   # nothing to clamp: add in C
                totals = list(map(add, totals, map(mul, scores, repeat(weight))))
            else:
                totals = [t + weight * (0.0 if s < 0.0 else 1.0 if s > 1.0 else s) for t, s in zip(totals, scores)]
        chosen = self.picker.pick(request, candidates, totals)
        if chosen:
            for hook in self.post_pick:
                hook.picked(request, chosen[0])
        return Decision(chosen, candidates, totals)

