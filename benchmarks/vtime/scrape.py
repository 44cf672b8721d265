"""What the picker's scraper would have read from one replica, computed lazily and exactly.

The scraper GETs `/metrics` every `interval` seconds (phase `phase`, one per replica, as the
picker's per-endpoint tasks start at different times); the page shows the engine's state at
the tick and reaches the picker `latency` seconds later, which is when the picker stamps it
(`Metrics.updated_at`). Instead of rendering a page at every tick, the owner calls `observe(now)`
before every change of engine state: if a tick passed since the last capture, the page is
rendered then; no state change happened between that tick and now, so it is exactly the page
the tick would have served. `visible(now)` returns the page the picker holds at `now` and the
time it was stamped. Requires latency < interval (two captures are then enough).
"""

from __future__ import annotations

import math
from typing import Callable


class ScrapeView:
    def __init__(self, interval: float, latency: float, phase: float, render: Callable[[], bytes]) -> None:
        if not 0 <= latency < interval:
            raise ValueError(f"scrape latency {latency} must be in [0, interval {interval})")
        self.interval = interval
        self.latency = latency
        self.phase = phase % interval
        self.render = render
        # (tick, page) of the two most recent captures; tick -inf = none yet.
        self._old: tuple[float, bytes | None] = (-math.inf, None)
        self._new: tuple[float, bytes | None] = (-math.inf, None)
        self.captures = 0

    def last_tick(self, t: float) -> float:
        """The latest scrape tick at or before t (ticks start at phase >= 0)."""
        if t < self.phase:
            return -math.inf
        return self.phase + math.floor((t - self.phase) / self.interval) * self.interval

    def observe(self, now: float) -> None:
        tick = self.last_tick(now)
        if tick > self._new[0]:
            self._old = self._new
            self._new = (tick, self.render())
            self.captures += 1

    def visible(self, now: float) -> tuple[bytes | None, float]:
        """(page, stamp) the picker holds at `now`; (None, 0.0) before its first scrape."""
        self.observe(now)
        tick = self.last_tick(now - self.latency)
        if tick == -math.inf:
            return None, 0.0
        page = self._old[1] if tick == self._old[0] else self._new[1]
        return page, tick + self.latency
