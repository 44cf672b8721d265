"""Flow control: requests held in the picker while the pool cannot take them, released in order.

A request is held (admission.admit said QUEUE) while the pool has no ready endpoint (scale from
zero) or is saturated. Held requests wait in one band per priority, higher bands first; within a
band clients take turns (round-robin over the gateway-set identity: the API key's user, else the
client address the gateway appended), and each client's own requests go first come first served.
A band is bounded by count and bytes (a request that does not fit is refused by `admit`), and every
request by time: past its TTL it gets the answer `admission.expired` gives.

Dispatch is paced by the same saturation detector that decides admission, with the requests sent
since each endpoint's last scrape counted as waiting (`pending`), so a gap in the queues releases a
few requests per scrape instead of the whole queue: the order is kept where it matters, here,
rather than in the model servers' first-come-first-served queues.

The queue runs on the picker's event loop and never blocks it: a held request is a callback
(`deliver`) that the ext_proc stream turns into its late answer (server.py). Dispatch passes run
when something may have freed capacity (a response ended, a scrape arrived, endpoints changed),
and on a short tick while anything is queued (for TTLs). With nothing queued the decision path
pays one length check.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from .admission import expired
from .config import FlowControlConfig
from .errors import RequestError

log = logging.getLogger(__name__)

TICK_S = 0.02
"""How often a non-empty queue is looked at even when nothing signalled a change (TTL expiry)."""


@dataclass(eq=False, slots=True)
class Held:
    """One waiting request. `request` is opaque here (the Director's prepared request)."""

    request: Any
    priority: int
    flow: str
    size: int
    subset: list[str] | None
    enqueued: float
    ttl: float
    deliver: Callable[[Any], None]
    """Called once with the Routed decision or the RequestError to answer with."""


@dataclass(slots=True)
class Band:
    """The requests of one priority: per client (flow) a FIFO, clients in turn order."""

    priority: int
    flows: collections.OrderedDict[str, collections.deque[Held]] = field(default_factory=collections.OrderedDict)
    count: int = 0
    bytes: int = 0

    def head(self) -> Held:
        return next(iter(self.flows.values()))[0]

    def pop(self) -> Held:
        flow, q = next(iter(self.flows.items()))
        h = q.popleft()
        if q:
            self.flows.move_to_end(flow)  # the next client's turn
        else:
            del self.flows[flow]
        self.count -= 1
        self.bytes -= h.size
        return h

    def push(self, h: Held) -> None:
        q = self.flows.get(h.flow)
        if q is None:
            q = self.flows[h.flow] = collections.deque()
        q.append(h)
        self.count += 1
        self.bytes += h.size

    def remove(self, h: Held) -> bool:
        q = self.flows.get(h.flow)
        if q is None or h not in q:
            return False
        q.remove(h)
        if not q:
            del self.flows[h.flow]
        self.count -= 1
        self.bytes -= h.size
        return True


class FlowQueue:
    """Priority bands (higher priority first) of per-client FIFOs; pure data, no clock."""

    def __init__(self, max_requests: int, max_bytes: int) -> None:
        self.max_requests = max_requests
        self.max_bytes = max_bytes
        self.bands: dict[int, Band] = {}
        self._order: list[Band] = []   # bands by priority, highest first
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def room(self, priority: int, size: int) -> bool:
        b = self.bands.get(priority)
        if b is None:
            return size <= self.max_bytes
        return b.count < self.max_requests and b.bytes + size <= self.max_bytes

    def queued_at_or_above(self, priority: int) -> bool:
        return any(b.count for b in self._order if b.priority >= priority)

    def push(self, h: Held) -> None:
        b = self.bands.get(h.priority)
        if b is None:
            b = self.bands[h.priority] = Band(h.priority)
            self._order = sorted(self.bands.values(), key=lambda x: -x.priority)
        b.push(h)
        self.size += 1

    def peek(self) -> Held | None:
        for b in self._order:
            if b.count:
                return b.head()
        return None

    def pop(self) -> Held | None:
        for b in self._order:
            if b.count:
                self.size -= 1
                return b.pop()
        return None

    def remove(self, h: Held) -> bool:
        b = self.bands.get(h.priority)
        if b is not None and b.remove(h):
            self.size -= 1
            return True
        return False

    def items(self) -> list[Held]:
        return [h for b in self._order for q in b.flows.values() for h in q]

    def depth(self) -> dict[int, tuple[int, int]]:
        """priority -> (requests, bytes), every band seen so far (gauges keep their series)."""
        return {p: (b.count, b.bytes) for p, b in self.bands.items()}


class FlowController:
    """The queue plus the policy that fills and drains it.

    `pool_state(subset)` -> (has endpoints, pool saturation with pending sends counted);
    `schedule(request)` -> the Routed decision (raises a RequestError when none can be made).
    """

    def __init__(self, cfg: FlowControlConfig, pool_state: Callable[[list[str] | None], tuple[bool, float]],
                 schedule: Callable[[Any], Any], metrics: Any, clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg = cfg
        self.queue = FlowQueue(cfg.max_requests_per_priority, cfg.max_bytes_per_priority)
        self.pool_state = pool_state
        self.schedule = schedule
        self.metrics = metrics
        self.clock = clock
        self._wake: asyncio.Event | None = None
        self._pass_scheduled = False
        # When the pool last went without endpoints while requests waited (cold start clock).
        self.zero_since: float | None = None

    # -- admission side
    def room(self, priority: int, size: int) -> bool:
        return self.queue.room(priority, size)

    def queued_at_or_above(self, priority: int) -> bool:
        return bool(self.queue.size) and self.queue.queued_at_or_above(priority)

    def enqueue(self, request: Any, priority: int, flow: str, size: int, subset: list[str] | None, endpoints: bool,
                deliver: Callable[[Any], None]) -> Held:
        now = self.clock()
        ttl = self.cfg.ttl_s if endpoints else self.cfg.no_endpoint_ttl_s
        h = Held(request, priority, flow, size, subset, now, ttl, deliver)
        self.queue.push(h)
        if not endpoints and self.zero_since is None:
            self.zero_since = now
        self.metrics.flow_enqueued(priority)
        if self._wake is not None:
            self._wake.set()
        return h

    def cancel(self, h: Held) -> None:
        """The client went away (its stream closed) while the request waited."""
        if self.queue.remove(h):
            self.metrics.flow_left(h.priority, "cancelled", self.clock() - h.enqueued)

    # -- draining
    def kick(self) -> None:
        """Capacity may have freed up: run a dispatch pass soon (once per loop iteration)."""
        if not self.queue.size or self._pass_scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (direct callers, tests): now
            self.dispatch()
            return
        self._pass_scheduled = True
        loop.call_soon(self._scheduled_pass)

    def _scheduled_pass(self) -> None:
        self._pass_scheduled = False
        self.dispatch()

    def dispatch(self) -> int:
        """Expire what waited too long, then release requests in order while the pool has room.
        Returns how many were released."""
        q = self.queue
        if not q.size:
            return 0
        now = self.clock()
        for h in [h for h in q.items() if now - h.enqueued >= h.ttl]:
            q.remove(h)
            endpoints, _ = self.pool_state(h.subset)
            self._answer(h, expired(h.priority, endpoints, now - h.enqueued), "expired", now)
        released = 0
        while q.size:
            h = q.peek()
            assert h is not None
            endpoints, saturation = self.pool_state(h.subset)
            if not endpoints or saturation >= 1.0:
                break
            q.pop()
            if self.zero_since is not None:
                self.metrics.flow_cold_start(now - self.zero_since)
                self.zero_since = None
            try:
                routed = self.schedule(h.request)
            except RequestError as e:
                self._answer(h, e, "rejected", now)
                continue
            self._answer(h, routed, "dispatched", now)
            released += 1
        if not q.size:
            self.zero_since = None
        return released

    def _answer(self, h: Held, outcome: Any, how: str, now: float) -> None:
        self.metrics.flow_left(h.priority, how, now - h.enqueued)
        try:
            h.deliver(outcome)
        except Exception:  # one stream's bug must not stop the queue
            log.exception("delivering a queued request's answer failed")

    def refuse_all(self, error: RequestError) -> None:
        """Answer every waiting request with `error` (the picker is stopping)."""
        now = self.clock()
        for h in self.queue.items():
            self.queue.remove(h)
            self._answer(h, error, "rejected", now)

    async def run(self) -> None:
        """Tick while anything is queued; sleep until something is."""
        self._wake = asyncio.Event()
        while True:
            if not self.queue.size:
                self._wake.clear()
                await self._wake.wait()
            await asyncio.sleep(TICK_S)
            self.dispatch()
