"""Routing strategies in virtual time. Each returns the replica index for a request, or raises
`Rejected`, and hears when the request's first token and its end arrive.

* `RoundRobinRouter`, `LeastRequestRouter`: what Envoy's ROUND_ROBIN and LEAST_REQUEST (power of
  two choices on its own active-request counts) do, re-stated (Envoy is not Python).
* `PickerRouter`: the picker itself: `load_config` → `build_registry().build` → `Director.route`
  with a `Datastore` whose metrics are the replicas' `/metrics` pages as of the last scrape tick,
  parsed by the picker's `parse_metrics`; in-flight released at the first token and at the end,
  as the ext_proc servicer does.
* `OracleRouter` (oracle.py): a bound with perfect knowledge.
"""

from __future__ import annotations

import random
from typing import Any, Protocol, Sequence

from endpoint_picker.config import load_config
from endpoint_picker.datastore import Datastore, Endpoint, Objective
from endpoint_picker.director import Director, Routed
from endpoint_picker.errors import RequestError
from endpoint_picker.scheduling.registry import build_registry
from endpoint_picker.scrape import parse_metrics
from endpoint_picker.selfmetrics import SelfMetrics

from ..workloads import PlannedRequest
from .events import EventQueue
from .replica import VirtualReplica

PORT = 8000
OBJECTIVE_HEADER = "x-gateway-inference-objective"


class Rejected(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


class Router(Protocol):
    def route(self, pr: PlannedRequest) -> tuple[int, Any]: ...

    def first_token(self, handle: Any) -> None: ...

    def finished(self, handle: Any) -> None: ...


def pod_address(i: int) -> str:
    return f"10.0.{i // 250}.{i % 250 + 1}"


class RoundRobinRouter:
    """Envoy ROUND_ROBIN with equal weights: hosts in order from a random start."""

    def __init__(self, n: int, rng: random.Random) -> None:
        self.n = n
        self.next = rng.randrange(n)

    def route(self, pr: PlannedRequest) -> tuple[int, Any]:
        i = self.next
        self.next = (i + 1) % self.n
        return i, None

    def first_token(self, handle: Any) -> None:
        pass

    def finished(self, handle: Any) -> None:
        pass


class LeastRequestRouter:
    """Envoy LEAST_REQUEST with equal weights: two random hosts (with replacement), the one with
    fewer active requests wins, the first on a tie (`choice_count` 2)."""

    def __init__(self, n: int, rng: random.Random) -> None:
        self.active = [0] * n
        self.rng = rng

    def route(self, pr: PlannedRequest) -> tuple[int, Any]:
        r = self.rng.randrange
        n = len(self.active)
        a, b = r(n), r(n)
        i = b if self.active[b] < self.active[a] else a
        self.active[i] += 1
        return i, i

    def first_token(self, handle: Any) -> None:
        pass

    def finished(self, handle: Any) -> None:
        self.active[handle] -= 1


class PickerRouter:
    """The picker's decision path, fed by scrape views of the replicas."""

    def __init__(self, config: dict[str, Any], replicas: Sequence[VirtualReplica], events: EventQueue,
                 rng: random.Random, objectives: Sequence[dict[str, Any]] = ()) -> None:
        cfg = load_config(config)
        self.replicas = list(replicas)
        self.events = events
        self.store = Datastore()
        endpoints = [Endpoint(name=f"pod-{i}", namespace="default", address=pod_address(i), port=PORT)
                     for i in range(len(self.replicas))]
        self.store.set_endpoints(endpoints)
        self.store.set_objectives([Objective(o["name"], int(o["priority"])) for o in objectives])
        self.keys = [e.key for e in endpoints]
        self.index = {k: i for i, k in enumerate(self.keys)}
        scheduler = build_registry().build(cfg.scheduling)
        if hasattr(scheduler.picker, "rng"):
            scheduler.picker.rng = random.Random(rng.random())   # deterministic ties per seed
        self.director = Director(cfg, self.store, scheduler, SelfMetrics(), rng=random.Random(rng.random()),
                                 clock=events.clock)
        self.engine_metrics = cfg.scrape.engine != "none"
        self._parsed: list[bytes | None] = [None] * len(self.replicas)

    def _refresh(self) -> None:
        now = self.events.now
        metrics = self.store.metrics
        for i, rep in enumerate(self.replicas):
            page, stamp = rep.scrape.visible(now)
            if page is None:
                continue
            m = metrics[self.keys[i]]
            if page is not self._parsed[i]:
                parse_metrics(page, m)
                self._parsed[i] = page
            m.updated_at = stamp

    def route(self, pr: PlannedRequest) -> tuple[int, Any]:
        if self.engine_metrics:
            self._refresh()
        headers = {"content-type": "application/json", "x-request-id": pr.request_id}
        objective = pr.meta.get("objective")
        if objective:
            headers[OBJECTIVE_HEADER] = objective
        try:
            routed = self.director.route(pr.path, headers, pr.body)
        except RequestError as e:
            raise Rejected(e.status, e.reason) from None
        return self.index[routed.primary], routed

    def first_token(self, handle: Routed) -> None:
        self.director.release_tokens(handle)

    def finished(self, handle: Routed) -> None:
        self.director.release_request(handle)
