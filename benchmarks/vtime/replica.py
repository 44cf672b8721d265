"""One simulated vLLM replica driven in simulated time.

The engine is the simulator's own `Engine`; its asyncio loop (`_run`) is replaced by the event
queue: a step is planned with `Engine._schedule()` (batch and duration), its results are applied
with `Engine._apply()` `duration` simulated seconds later, and the next step is planned at once,
exactly the order the engine's loop follows when it is never late. Before every change of
engine state the scrape view is told the time, so the picker sees the page of its last tick.
"""

from __future__ import annotations

from vllm_simulator.config import SimConfig
from vllm_simulator.engine import Engine
from vllm_simulator.engine_request import Request
from vllm_simulator.metrics import Metrics

from .events import EventQueue
from .scrape import ScrapeView

IDLE_RETRY_S = 0.001


def _ignore(now: float) -> None:
    pass   # the engine loop's sleep when nothing could be scheduled but work remains


class VirtualReplica:
    def __init__(self, key: str, cfg: SimConfig, events: EventQueue, scrape_interval: float,
                 scrape_latency: float, scrape_phase: float, scraped: bool = True) -> None:
        """`scraped`: someone reads this replica's /metrics (the picker); else pages are never
        rendered (round robin, least request and the oracle read no metrics)."""
        self.key = key
        self.cfg = cfg
        self.events = events
        self.metrics = Metrics()
        self.engine = Engine(cfg, self.metrics)
        for name, _ in cfg.lora_modules:
            self.engine.cache_lora(name)
        self.scrape = ScrapeView(scrape_interval, scrape_latency, scrape_phase,
                                 lambda: self.metrics.render(self.engine))
        self._observe = self.scrape.observe if scraped else _ignore
        self._stepping = False
        self.steps = 0

    def submit(self, req: Request) -> None:
        """The request arrives now (no network delay between gateway and replica)."""
        self._observe(self.events.now)
        self.engine.add(req)
        if not self._stepping:
            self._plan()

    def _plan(self) -> None:
        eng = self.engine
        while True:
            if not eng.running and not eng.waiting:
                self._stepping = False
                return
            self._observe(self.events.now)
            sched, dur = eng._schedule()
            if sched is not None:
                break
            if not eng.running and eng.waiting:
                eng._fail_unschedulable()   # never fits in the KV cache: the engine rejects it
                continue
            self._stepping = True
            self.events.at(self.events.now + IDLE_RETRY_S, self._plan)
            return
        eng.sim_time += dur
        self._stepping = True
        self.events.at(self.events.now + dur, self._apply, sched)

    def _apply(self, sched) -> None:
        self._observe(self.events.now)
        self.engine._apply(sched)
        self.steps += 1
        self._plan()

    def state(self) -> dict:
        return self.engine.state()
