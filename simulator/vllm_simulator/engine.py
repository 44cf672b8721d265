"""The engine of one simulated vLLM replica: its scheduler (scheduler.py) stepped by one asyncio
task in (scaled) real time.

The loop plans a step, sleeps once for its duration times ``time_scale`` (catching up at most
50 ms after an overshooting sleep), then applies it.  Idle = one ``await event.wait()``: no CPU.
``stall`` freezes it (fault injection); ``state`` is the replica's ``/sim/state`` view.
"""

from __future__ import annotations

import asyncio
import time

from .config import SimConfig
from .engine_request import Request
from .metrics import Metrics
from .scheduler import Scheduler


class Engine(Scheduler):
    def __init__(self, cfg: SimConfig, metrics: Metrics | None = None):
        super().__init__(cfg, metrics)
        self.sim_time = 0.0         # simulated (unscaled) seconds spent in steps
        self.busy_wall = 0.0
        self.stall_until = 0.0
        self.closed = False
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None

    # ------------------------------------------------------------------ control
    def start(self) -> None:
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        self.closed = True
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass

    def _kick(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def stall(self, seconds: float) -> None:
        self.stall_until = max(self.stall_until, time.monotonic() + seconds)
        self._kick()

    def unstall(self) -> None:
        self.stall_until = 0.0
        self._kick()

    def add(self, req: Request) -> None:
        """Queue a request and wake the loop."""
        super().add(req)
        self._kick()

    # ------------------------------------------------------------------ views
    def state(self) -> dict:
        kv = self.kv
        run_l, wait_l = self.lora_lists()
        m = self.metrics
        return {
            "running": len(self.running),
            "waiting": len(self.waiting),
            "running_ids": [r.rid for r in self.running[:32]],     # first 32 only (cheap to poll)
            "waiting_ids": [r.rid for _, r in zip(range(32), self.waiting)],
            "kv_blocks_total": kv.total,
            "kv_blocks_used": kv.used,
            "kv_blocks_cached_free": kv.cached_free,
            "kv_blocks_cached": kv.cached_free + len(kv.refs),
            "kv_cache_usage": kv.usage(),
            "kv_evictions": kv.evictions,
            "prefix_cache_queries": m.prefix_queries,
            "prefix_cache_hits": m.prefix_hits,
            "num_preemptions": m.preemptions,
            "prompt_tokens_total": m.prompt_tokens,
            "generation_tokens_total": m.generation_tokens,
            "request_success": dict(m.success),
            "running_lora_adapters": run_l,
            "waiting_lora_adapters": wait_l,
            "gpu_lora_slots": list(self.gpu_loras),
            "cpu_lora_cache": list(self.cpu_loras),
            "lora_loads": self.lora_loads,
            "steps": self.steps,
            "sim_time_s": self.sim_time,
            "stalled": self.stall_until > time.monotonic(),
            "last_step": self.last_step,
        }

    # ------------------------------------------------------------------ loop
    async def _run(self) -> None:
        while not self.closed:
            try:
                await self._loop()
            except asyncio.CancelledError:
                raise
            except Exception:  # never let a bug silently hang the replica
                import traceback
                traceback.print_exc()
                await asyncio.sleep(0.01)

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        scale = self.cfg.time_scale
        next_t = loop.time()
        while not self.closed:
            if not self.running and not self.waiting:
                self._wake.clear()
                await self._wake.wait()
                next_t = loop.time()
                continue
            now = loop.time()
            st = self.stall_until - time.monotonic()
            if st > 0:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), st)
                except asyncio.TimeoutError:
                    pass
                next_t = loop.time()
                continue
            sched, dur = self._schedule()
            if sched is None:
                if not self.running and self.waiting:
                    self._fail_unschedulable()
                else:
                    await asyncio.sleep(0.001)
                continue
            self.sim_time += dur
            scale = self.cfg.time_scale
            if next_t < now - 0.05:
                next_t = now - 0.05      # bounded catch-up after overshooting sleeps
            next_t += dur * scale
            delay = next_t - now
            t0 = loop.time()
            await asyncio.sleep(delay if delay > 0 else 0)
            self.busy_wall += loop.time() - t0
            self._apply(sched)
            sched = None        # idle, the loop waits here: keep no finished request (nor its connection)
