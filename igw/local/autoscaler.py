"""The local autoscaler: the rendered ScaledObjects' policy, run on replica processes.

On GKE a KEDA ScaledObject (components/builders/autoscaling.py) scales a model-server Deployment
on one demand figure: the server's queue (`vllm:num_requests_waiting`) or batch
(`vllm:num_requests_running`) summed over its pods, plus the requests its pools' pickers hold
(`picker_flow_queued_requests`). `igw up` does the same to the Deployment's replica processes,
reading those metrics from the replicas and pickers themselves:

- 0 -> 1 as soon as the demand is above 0 (KEDA's activation), and never below 1 while anything
  runs, waits or is held (the ScaledObject's `activity` trigger);
- from 1: `ceil(demand / target)` replicas between max(1, min) and max, unchanged within 10% of
  the current ratio (the HPA's tolerance), up at once;
- down only to the highest count recommended during the last `scale_down_delay` seconds (the
  HPA's stabilisation window; with KEDA's cooldownPeriod the same delay before 1 -> 0);
- every `polling_interval` seconds.

A new replica takes the Deployment's next pod slot (name and loopback address fixed for the
stack's life) and joins the endpoints once its readiness probe passes; a removed one leaves the
endpoints at once and is stopped when idle (or after DRAIN_S). The supervisor calls `adopt` with
each new plan and `step` from its loop; the metric reads run on a worker thread, so a slow replica
never stalls the loop. Every decision is appended to `<state>/logs/autoscaler.jsonl`; `state()`
is what state.json reports (current, desired, demand, cold starts).
"""

from __future__ import annotations

import collections
import dataclasses
import ipaddress
import json
import math
import socket
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from components.builders.autoscaling import METRIC_ANNOTATION, PICKER_DEMAND, POOLS_ANNOTATION, SERVER_METRIC
from endpoint_picker.scrape import parse_metrics

from .plan import LocalPlan
from .plan_replicas import Replica
from .rendered_objects import PlanError

if TYPE_CHECKING:
    from .process import Proc
    from .supervisor import Supervisor

TOLERANCE = 0.1
"""The HPA's default: no change while demand per replica is within 10% of the target."""
DRAIN_S = 30.0
"""A removed replica is stopped once idle, or after this long (the Deployment's preStop + drain, shortened)."""


@dataclasses.dataclass(frozen=True)
class Policy:
    deployment: str
    namespace: str
    min_replicas: int
    max_replicas: int
    metric: str           # queue | running
    target: float         # demand per replica
    scale_down_delay: float
    polling_interval: float
    pools: tuple[str, ...]

    @classmethod
    def from_scaled_object(cls, obj: dict[str, Any]) -> Policy:
        meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
        where = f"ScaledObject {meta.get('namespace', 'default')}/{meta.get('name')}"
        annotations = meta.get("annotations") or {}
        metric = annotations.get(METRIC_ANNOTATION)
        triggers = spec.get("triggers") or []
        if metric not in SERVER_METRIC or [t.get("name") for t in triggers] != ["demand", "activity"]:
            raise PlanError(f"{where}: not one of ours (annotation {METRIC_ANNOTATION} and the triggers demand, "
                            "activity expected); igw up runs the autoscaling the stack renders")
        delay = float(spec.get("cooldownPeriod", 300))
        return cls(
            deployment=str((spec.get("scaleTargetRef") or {}).get("name")),
            namespace=str(meta.get("namespace") or "default"),
            min_replicas=int(spec.get("minReplicaCount", 0)),
            max_replicas=int(spec.get("maxReplicaCount", 100)),
            metric=metric,
            target=float(triggers[0]["metadata"]["threshold"]),
            scale_down_delay=delay,
            polling_interval=float(spec.get("pollingInterval", 30)),
            pools=tuple(p for p in str(annotations.get(POOLS_ANNOTATION, "")).split(",") if p),
        )


def policies(objects: list[dict[str, Any]]) -> dict[str, Policy]:
    """Deployment name -> its policy, from the rendered ScaledObjects."""
    out = {}
    for o in objects:
        if o.get("kind") == "ScaledObject" and str(o.get("apiVersion", "")).startswith("keda.sh/"):
            p = Policy.from_scaled_object(o)
            out[p.deployment] = p
    return out


def recommend(current: int, demand: float, activity: float, p: Policy) -> int:
    """Replicas for this demand now (before the scale-down window). `activity`: requests running,
    waiting or held; none at all lets a policy with min_replicas 0 go to zero."""
    if activity <= 0:
        return p.min_replicas  # 0 only when the policy allows it (KEDA deactivates the Deployment)
    if demand <= 0:
        return max(1, p.min_replicas)
    if current > 0 and abs(demand / (current * p.target) - 1) <= TOLERANCE:
        return current
    return min(p.max_replicas, max(1, p.min_replicas, math.ceil(demand / p.target)))


@dataclasses.dataclass
class Reading:
    at: float
    demand: float | None      # the policy's metric + held requests; None: nothing could be read
    activity: float           # running + waiting + held
    idle: dict[str, bool]


class DeploymentScaler:
    """One autoscaled Deployment: its slots, which are running, its recent recommendations."""

    def __init__(self, policy: Policy, slots: list[Replica], active: int) -> None:
        self.policy = policy
        self.slots = slots
        self.active = active                  # slots[:active] run
        self.recent: collections.deque[tuple[float, int]] = collections.deque()
        self.next_poll = 0.0
        self.reading: Future[Reading] | None = None
        self.demand: float | None = None
        self.desired = active
        self.draining: dict[str, tuple[Proc, float]] = {}
        self.started: dict[str, float] = {}    # replica -> when the scale-up started it
        self.cold_starts: list[dict[str, Any]] = []

    def decide(self, now: float, demand: float, activity: float) -> int:
        """The HPA/KEDA answer: up at once, down to the highest recommendation in the window."""
        rec = recommend(self.active, demand, activity, self.policy)
        window = self.policy.scale_down_delay
        self.recent.append((now, rec))
        while self.recent and self.recent[0][0] < now - window:
            self.recent.popleft()
        if rec >= self.active:
            return rec
        return min(self.active, max(r for _, r in self.recent))


class LocalAutoscaler:
    def __init__(self, sup: Supervisor) -> None:
        self.sup = sup
        self.scalers: dict[str, DeploymentScaler] = {}
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="autoscaler")
        self.http = httpx.Client(timeout=1.0)
        self.log_path: Path = sup.logs / "autoscaler.jsonl"

    # ------------------------------------------------------------------ plans
    def adopt(self, plan: LocalPlan) -> None:
        """Give each autoscaled Deployment of `plan` its slots and its running count (min at the
        first plan, the current count at a reload): the pools list only the running slots."""
        found = policies(plan.objects)
        for dep, policy in found.items():
            pools = [p for p in plan.pools.values() if any(r.deployment == dep for r in p.replicas)]
            if not pools:
                raise PlanError(f"ScaledObject {policy.namespace}/{dep}: no InferencePool selects Deployment {dep}")
            template = next(r for r in pools[0].replicas if r.deployment == dep)
            old = self.scalers.get(dep)
            addresses = self._addresses(plan, dep, template, policy.max_replicas, old)
            slots = [dataclasses.replace(template, name=f"{dep}-{i}", address=a) for i, a in enumerate(addresses)]
            active = policy.min_replicas if old is None else min(max(old.active, policy.min_replicas), policy.max_replicas)
            scaler = DeploymentScaler(policy, slots, active)
            if old is not None:
                scaler.recent, scaler.draining, scaler.cold_starts = old.recent, old.draining, old.cold_starts
                scaler.started, scaler.demand = old.started, old.demand
            self.scalers[dep] = scaler
            for p in pools:
                p.replicas = [r for r in p.replicas if r.deployment != dep] + slots[:active]
        for dep in [d for d in self.scalers if d not in found]:
            del self.scalers[dep]  # no longer autoscaled: the plan's replica count applies

    def _addresses(self, plan: LocalPlan, dep: str, template: Replica, n: int, old: DeploymentScaler | None) -> list[str]:
        """Slot addresses: kept across reloads; new ones are the first loopback addresses from the
        stack's base that no other pod uses and that are free to bind."""
        others = {r.address for r in plan.replicas if r.deployment != dep}
        kept = [s.address for s in old.slots] if old is not None else [template.address]
        out = [a for a in kept if a not in others][:n]
        candidate = ipaddress.IPv4Address(self.sup.o.address_base)
        while len(out) < n:
            a = str(candidate)
            candidate += 1
            if a in others or a in out:
                continue
            if all(_bindable(a, port) for port in template.ports):
                out.append(a)
            if int(candidate) - int(ipaddress.IPv4Address(self.sup.o.address_base)) > 1000:
                raise PlanError(f"Deployment {dep}: no free loopback addresses for {n} replicas from {self.sup.o.address_base}")
        return out

    # ------------------------------------------------------------------ the loop
    def step(self, now: float) -> bool:
        """Apply finished readings, start new ones, finish drains. True when pods or the readings
        changed (the supervisor then republishes endpoints and saves its state)."""
        changed = False
        for dep, sc in self.scalers.items():
            changed |= self._ready_replicas(sc, now)
            if sc.reading is not None and sc.reading.done():
                reading, sc.reading = sc.reading.result(), None
                self._apply(dep, sc, reading, now)
                changed = True  # state.json shows each reading (publishing unchanged pods rewrites nothing)
            if sc.reading is None and now >= sc.next_poll:
                sc.next_poll = now + sc.policy.polling_interval
                sc.reading = self.pool.submit(self._read, sc, now)
        return changed

    def _ready_replicas(self, sc: DeploymentScaler, now: float) -> bool:
        """Record the cold start of replicas a scale-up started, once ready."""
        for name, t0 in list(sc.started.items()):
            p = self.sup.sims.get(name)
            if p is not None and p.ready:
                del sc.started[name]
                sc.cold_starts.append({"replica": name, "seconds": round(now - t0, 3)})
                self._log({"event": "ready", "deployment": sc.policy.deployment, "replica": name,
                           "cold_start_s": round(now - t0, 3)})
        return False

    def _read(self, sc: DeploymentScaler, at: float) -> Reading:
        """(worker thread) The demand: the metric over running replicas + the pools' held requests."""
        total, activity, seen = 0.0, 0.0, False
        for r in sc.slots[:sc.active]:
            p = self.sup.sims.get(r.name)
            if p is None or not p.ready:
                continue
            try:
                m = parse_metrics(self.http.get(f"http://{r.address}:{r.ports[0]}/metrics").content)
            except (httpx.HTTPError, ValueError):
                continue
            total += m.waiting if sc.policy.metric == "queue" else m.running
            activity += m.waiting + m.running
            seen = True
        for pool in sc.policy.pools:
            for picker in list(self.sup.pickers.get(pool, [])):
                if not (picker.ready and picker.running()):
                    continue
                try:
                    text = self.http.get(f"http://127.0.0.1:{picker.meta['metrics_port']}/metrics").text
                except httpx.HTTPError:
                    continue
                held = _gauge(text, PICKER_DEMAND)
                total += held
                activity += held
                seen = True
        idle = {}
        for rname, (p, _) in list(sc.draining.items()):
            idle[rname] = not p.running() or self.sup.replicas.idle(p)
        return Reading(at, total if seen else None, activity, idle)

    def _apply(self, dep: str, sc: DeploymentScaler, reading: Reading, now: float) -> bool:
        changed = False
        for rname, is_idle in reading.idle.items():
            entry = sc.draining.get(rname)
            if entry is not None and (is_idle or now > entry[1]):
                entry[0].stop(2)
                del sc.draining[rname]
                self._log({"event": "stopped", "deployment": dep, "replica": rname, "idle": is_idle})
                changed = True
        if reading.demand is None:
            return changed
        sc.demand = reading.demand
        desired = sc.decide(now, reading.demand, reading.activity)
        sc.desired = desired
        if desired != sc.active:
            self._log({"event": "scale", "deployment": dep, "from": sc.active, "to": desired,
                       "demand": round(reading.demand, 3), "target": sc.policy.target})
            self.sup.progress(f"  autoscaler {dep}: {sc.active} -> {desired} replicas (demand {reading.demand:g}, "
                              f"target {sc.policy.target:g} per replica)")
            changed = True
            while sc.active < desired:
                self._start(dep, sc, sc.slots[sc.active], now)
                sc.active += 1
            while sc.active > desired:
                sc.active -= 1
                self._retire(sc, sc.slots[sc.active], now)
            self._sync_pools(dep, sc)
        self._log({"event": "poll", "deployment": dep, "demand": round(reading.demand, 3),
                   "activity": round(reading.activity, 3), "replicas": sc.active,
                   "ready": sum(1 for r in sc.slots[:sc.active] if (p := self.sup.sims.get(r.name)) and p.ready)})
        return changed

    def _start(self, dep: str, sc: DeploymentScaler, r: Replica, now: float) -> None:
        old = sc.draining.pop(r.name, None)
        if old is not None:  # scaled down and up again before it stopped: a fresh pod
            old[0].stop(2)
        p = self.sup.replicas.proc(r, self.sup.logs)
        p.start()
        self.sup.sims[r.name] = p
        sc.started[r.name] = now

    def _retire(self, sc: DeploymentScaler, r: Replica, now: float) -> None:
        p = self.sup.sims.pop(r.name, None)
        sc.started.pop(r.name, None)
        if p is not None:
            p.ready = False
            p.restart_at = math.inf  # leaving: the supervisor must not restart it
            sc.draining[r.name] = (p, now + DRAIN_S)

    def _sync_pools(self, dep: str, sc: DeploymentScaler) -> None:
        assert self.sup.plan is not None
        for pool in self.sup.plan.pools.values():
            if any(r.deployment == dep for r in pool.replicas) or pool.name in sc.policy.pools:
                pool.replicas = [r for r in pool.replicas if r.deployment != dep] + sc.slots[:sc.active]

    # ------------------------------------------------------------------ reporting
    def _log(self, entry: dict[str, Any]) -> None:
        entry = {"t": round(time.time(), 3), **entry}
        with open(self.log_path, "a") as f:
            f.write(json.dumps(entry) + "\n")

    def procs(self) -> list[Proc]:
        """Replicas being drained (still running: the supervisor stops them at exit)."""
        return [p for sc in self.scalers.values() for p, _ in sc.draining.values()]

    def state(self) -> dict[str, Any]:
        return {dep: {"pools": list(sc.policy.pools), "min_replicas": sc.policy.min_replicas,
                      "max_replicas": sc.policy.max_replicas,
                      "metric": sc.policy.metric, "target": sc.policy.target,
                      "scale_down_delay": sc.policy.scale_down_delay, "polling_interval": sc.policy.polling_interval,
                      "replicas": sc.active, "desired": sc.desired, "demand": sc.demand,
                      "ready": sum(1 for r in sc.slots[:sc.active] if (p := self.sup.sims.get(r.name)) and p.ready),
                      "draining": sorted(sc.draining), "cold_starts": sc.cold_starts[-20:]}
                for dep, sc in self.scalers.items()}

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        for sc in self.scalers.values():
            for p, _ in sc.draining.values():
                p.stop(2)
            sc.draining.clear()
        self.http.close()


def _gauge(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            try:
                return float(line.split()[-1])
            except ValueError:
                return 0.0
    return 0.0


def _bindable(address: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((address, port))
            return True
        except OSError:
            return False
