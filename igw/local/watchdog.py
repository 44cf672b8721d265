"""The kubelet's probes of the pickers: readiness decides whether a picker is one of Envoy's picker
endpoints, liveness restarts a hung one. Timings come from the rendered Deployment's probes
(picker_deployment.py), so a local hang is detected and handled on the same schedule as in the
cluster.

Probes run on a small thread pool: a frozen picker makes its probe wait the full timeout, and the
supervisor loop (which also restarts crashed processes and publishes endpoints) must not wait
with it. A liveness failure streak of `failureThreshold` sends SIGTERM to the picker's process
group and SIGKILL after the probe's termination grace (a SIGSTOPped process only ever reacts to
the SIGKILL); the supervisor then sees the exit and restarts it like any crash.
"""

from __future__ import annotations

import concurrent.futures as cf
import signal
from dataclasses import dataclass
from typing import Callable

from .picker_deployment import PickerDeployment, Probe
from .pickers import picker_health
from .process import Proc
from .state import kill_group


@dataclass
class _Track:
    """Probe state of one picker process (reset when the process is restarted: a new pid)."""

    pid: int
    started: float
    next_ready: float
    next_live: float
    ready_fails: int = 0
    live_fails: int = 0
    ready_call: cf.Future | None = None
    live_call: cf.Future | None = None
    kill_at: float | None = None        # SIGKILL deadline once liveness failed


class PickerWatchdog:
    def __init__(self, progress: Callable[[str], None] = print, workers: int = 4) -> None:
        self.progress = progress
        self.executor = cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="picker-probe")
        self.tracks: dict[int, _Track] = {}   # id(Proc) -> track

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)

    def _probe(self, p: Proc, probe: Probe) -> cf.Future:
        return self.executor.submit(picker_health, p, probe.service, probe.timeout_s)

    def step(self, now: float, pickers: list[tuple[Proc, PickerDeployment]]) -> bool:
        """Advance every picker's probes; returns whether any readiness changed."""
        changed = False
        live_ids = set()
        for p, spec in pickers:
            live_ids.add(id(p))
            if not p.running():
                self.tracks.pop(id(p), None)
                continue
            t = self.tracks.get(id(p))
            if t is None or t.pid != p.pid:
                t = self.tracks[id(p)] = _Track(p.pid or 0, now, next_ready=now,
                                                next_live=now + spec.liveness.initial_delay_s)
            if t.kill_at is not None:
                if now >= t.kill_at:
                    kill_group(p.pid, signal.SIGKILL)
                    t.kill_at = float("inf")
                continue
            changed |= self._readiness(p, spec.readiness, t, now)
            changed |= self._liveness(p, spec, t, now)
        for k in [k for k in self.tracks if k not in live_ids]:
            del self.tracks[k]
        return changed

    def _readiness(self, p: Proc, probe: Probe, t: _Track, now: float) -> bool:
        if t.ready_call is None:
            if now >= t.next_ready:
                t.ready_call = self._probe(p, probe)
                t.next_ready = now + probe.period_s
            return False
        if not t.ready_call.done():
            return False
        ok = bool(t.ready_call.result())
        t.ready_call = None
        t.ready_fails = 0 if ok else t.ready_fails + 1
        ready = True if ok else (p.ready and t.ready_fails < probe.failure_threshold)
        if ready != p.ready:
            p.ready = ready
            return True
        return False

    def _liveness(self, p: Proc, spec: PickerDeployment, t: _Track, now: float) -> bool:
        """Returns whether the picker just lost readiness because it is being restarted."""
        probe = spec.liveness
        if t.live_call is None:
            if now >= t.next_live:
                t.live_call = self._probe(p, probe)
                t.next_live = now + probe.period_s
            return False
        if not t.live_call.done():
            return False
        ok = bool(t.live_call.result())
        t.live_call = None
        t.live_fails = 0 if ok else t.live_fails + 1
        was_ready = p.ready
        if t.live_fails >= probe.failure_threshold:
            grace = spec.liveness_kill_grace_s
            self.progress(f"  picker {p.name} failed liveness {t.live_fails} times in a row (hung); "
                          f"restarting it (SIGTERM, SIGKILL after {grace:g}s)")
            p.meta["liveness_restarts"] = p.meta.get("liveness_restarts", 0) + 1
            p.ready = False
            kill_group(p.pid, signal.SIGTERM)
            t.kill_at = now + grace
        return was_ready and not p.ready
