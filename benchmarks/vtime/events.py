"""A simulated clock and the heap of things that happen at simulated times."""

from __future__ import annotations

import heapq
from typing import Any, Callable


class EventQueue:
    """`at(t, fn, *args)` schedules a call; `run(until)` executes calls in time order.

    Ties run in scheduling order (a sequence number breaks them), so a run is deterministic.
    `now` is the simulated time of the call being executed; pass `clock` where a callable
    clock is expected (the picker's Director).
    """

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self._heap: list[tuple[float, int, Callable[..., Any], tuple[Any, ...]]] = []
        self._seq = 0
        self.executed = 0

    def clock(self) -> float:
        return self.now

    def at(self, t: float, fn: Callable[..., Any], *args: Any) -> None:
        if t < self.now:
            raise ValueError(f"event at {t} is in the past (now {self.now})")
        self._seq += 1
        heapq.heappush(self._heap, (t, self._seq, fn, args))

    def pending(self) -> int:
        return len(self._heap)

    def run(self, until: float, max_events: int = 50_000_000) -> bool:
        """Run events up to `until` (inclusive); True if the queue drained before it."""
        heap = self._heap
        pop = heapq.heappop
        n = 0
        while heap:
            if heap[0][0] > until:
                self.now = until
                self.executed += n
                return False
            t, _, fn, args = pop(heap)
            self.now = t
            fn(*args)
            n += 1
            if n >= max_events:
                raise RuntimeError(f"more than {max_events} events before t={until}: runaway simulation")
        self.executed += n
        return True
