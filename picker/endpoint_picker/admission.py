"""Admission: API keys (401), rate limits (429), saturation-based shedding (429), overload (503).

Saturation (utilization detector): endpoint = max(waiting/queue_threshold, kv/kv_threshold),
pool = mean over endpoints; metrics older than the staleness bound count as 1.0 (fail closed).
Only sheddable requests (priority < 0) are shed, and only when pool saturation >= 1. Traffic
that is never shed is bounded instead (when configured): past `overload_threshold` (priority 0)
or `critical_overload_threshold` (priority > 0) it gets 503 at once rather than a place in queues
that only grow, so whatever is admitted waits a bounded time and critical traffic goes last.

With flow control (`flow_control` in the config; the queue itself is flow_control.py) the step
between "saturated" and "refused" is a place in the picker's queue: `admit` is the one function
that says admit, queue or refuse, for both modes.
"""

from __future__ import annotations

import enum
import hashlib
import math
import time
from pathlib import Path
from typing import Iterable

import orjson
import yaml

from .config import FlowControlConfig, RateLimit, SaturationConfig
from .datastore import InFlight, Metrics
from .errors import ConfigError, NoEndpoints, Overloaded, TooManyRequests, Unauthorized

PERIOD_SECONDS = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}


def endpoint_saturation(m: Metrics, inflight: InFlight, cfg: SaturationConfig, now: float, engine: bool,
                        pending: bool = False) -> float:
    """`pending`: also count the requests this picker sent since the endpoint's last scrape as
    waiting (flow control paces its dispatches with it; scraped metrics alone would release a
    whole queue into the first gap they show)."""
    if not engine or not m.supported:
        return inflight.requests / cfg.max_concurrency
    if now - m.updated_at > cfg.metrics_staleness_ms / 1000.0:
        return 1.0
    waiting = m.waiting + inflight.since_scrape if pending else m.waiting
    return max(waiting / cfg.queue_threshold, m.kv_usage / cfg.kv_cache_threshold)


def pool_saturation(pairs: Iterable[tuple[Metrics, InFlight]], cfg: SaturationConfig, engine: bool, now: float | None = None,
                    pending: bool = False) -> float:
    t = time.monotonic() if now is None else now
    values = [endpoint_saturation(m, f, cfg, t, engine, pending) for m, f in pairs]
    return sum(values) / len(values) if values else 1.0


def check_shed(priority: int, saturation: float) -> None:
    if priority < 0 and saturation >= 1.0:
        raise TooManyRequests("pool saturated; sheddable request rejected", reason="rejected-saturated",
                              headers={"retry-after": "1"})


def overload_threshold(priority: int, cfg: SaturationConfig) -> float | None:
    """The pool saturation at which a request of this priority is refused; None = never."""
    if priority < 0:
        return None
    if priority > 0 and cfg.critical_overload_threshold is not None:
        return cfg.critical_overload_threshold
    return cfg.overload_threshold


def check_overload(threshold: float, saturation: float) -> None:
    if saturation >= threshold:
        raise Overloaded(f"pool overloaded (saturation {saturation:.1f} >= {threshold:g}); try again shortly",
                         reason="rejected-overloaded", headers={"retry-after": "1"})


class Verdict(enum.Enum):
    ADMIT = "admit"   # schedule now
    QUEUE = "queue"   # hold in the flow-control queue


def admit(priority: int, saturation: float, cfg: SaturationConfig, flow: FlowControlConfig | None, *,
          endpoints: bool, room: bool, queued_ahead: bool) -> Verdict:
    """Admit, queue or refuse (raises the RequestError the client gets).

    `endpoints`: the pool has an eligible endpoint; `room`: the queue of this priority has room
    for the request; `queued_ahead`: requests of this priority or higher are already queued (a
    new one waits behind them). Without flow control nothing is queued:

    | pool state                         | priority < 0 (Sheddable) | 0 (Standard) / > 0 (Critical)    |
    |------------------------------------|--------------------------|----------------------------------|
    | no endpoint                        | 503 rejected-no-endpoints; with flow control: queue (full: 503) |
    | saturation >= its overload bound   | (none)                   | 503 rejected-overloaded          |
    | saturation >= 1                    | 429 rejected-saturated; with flow control: queue (full: 429)    |
    |                                    |                          | admit; with flow control: queue (full: 503 rejected-overloaded) |
    | below 1                            | admit (flow control: queue behind `queued_ahead`)               |
    """
    if not endpoints:
        if flow is None:
            raise NoEndpoints("no eligible endpoints", reason="rejected-no-endpoints")
        if not room:
            raise NoEndpoints("no eligible endpoints, and the queue for this priority is full",
                              reason="rejected-no-endpoints", headers={"retry-after": "1"})
        return Verdict.QUEUE
    bound = overload_threshold(priority, cfg)
    if bound is not None:
        check_overload(bound, saturation)
    if flow is None:
        check_shed(priority, saturation)
        return Verdict.ADMIT
    if saturation < 1.0 and not queued_ahead:
        return Verdict.ADMIT
    if room:
        return Verdict.QUEUE
    if priority < 0:
        raise TooManyRequests("pool saturated and the queue for sheddable requests is full", reason="rejected-saturated",
                              headers={"retry-after": "1"})
    raise Overloaded(f"pool saturated and the queue for priority {priority} is full; try again shortly",
                     reason="rejected-overloaded", headers={"retry-after": "1"})


def expired(priority: int, endpoints: bool, waited_s: float) -> NoEndpoints | TooManyRequests | Overloaded:
    """What a queued request gets when its time runs out: 503 rejected-no-endpoints while the pool
    has no endpoint (it did not scale up in time), else rejected-ttl-expired, 429 for sheddable
    traffic and 503 for the rest (the same statuses as a full queue)."""
    if not endpoints:
        return NoEndpoints(f"no endpoint became ready within {waited_s:.0f}s (the pool may be scaling up from zero)",
                           reason="rejected-no-endpoints", headers={"retry-after": "1"})
    message = f"pool saturated; the request waited {waited_s:.0f}s in the queue"
    if priority < 0:
        return TooManyRequests(message, reason="rejected-ttl-expired", headers={"retry-after": "1"})
    return Overloaded(message, reason="rejected-ttl-expired", headers={"retry-after": "1"})


class TokenBucket:
    __slots__ = ("capacity", "rate", "tokens", "stamp")

    def __init__(self, capacity: int, period_s: float, now: float) -> None:
        self.capacity = float(capacity)
        self.rate = capacity / period_s
        self.tokens = float(capacity)
        self.stamp = now

    def take(self, now: float) -> float:
        """0 when admitted, else seconds until one call is available."""
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class RateLimiter:
    """Token buckets per (rule, user) or per rule for key=endpoint; `calls` per renewal period."""

    def __init__(self, rules: list[RateLimit], clock=time.monotonic) -> None:
        self.rules = rules
        self.clock = clock
        self._buckets: dict[tuple[int, str], TokenBucket] = {}

    def check(self, user: str, models: frozenset[str]) -> None:
        """`models`: the client-facing model(s) the request counts as (Datastore.served_as)."""
        if not self.rules:
            return
        now = self.clock()
        wait = 0.0
        for i, rule in enumerate(self.rules):
            if rule.model is not None and rule.model not in models:
                continue
            bucket_key = (i, user if rule.key == "user" else "")
            b = self._buckets.get(bucket_key)
            if b is None:
                b = self._buckets[bucket_key] = TokenBucket(rule.calls, PERIOD_SECONDS[rule.renewal_period], now)
            wait = max(wait, b.take(now))
        if wait > 0:
            raise TooManyRequests("rate limit exceeded", reason="rate-limited",
                                  headers={"retry-after": str(max(1, math.ceil(wait)))})


class ApiKeys:
    """sha256(key) hex → user name, loaded from a YAML/JSON mapping (a Secret mount)."""

    def __init__(self, hashes: dict[str, str]) -> None:
        self.hashes = {k.lower(): v for k, v in hashes.items()}

    @classmethod
    def load(cls, path: str | Path) -> ApiKeys:
        try:
            raw = Path(path).read_bytes()
            data = orjson.loads(raw) if raw.lstrip().startswith(b"{") else yaml.safe_load(raw)
        except (OSError, ValueError, yaml.YAMLError) as e:
            raise ConfigError(f"api keys file {path}: {e}") from e
        if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
            raise ConfigError(f"api keys file {path}: expected a mapping of sha256 hex -> user name")
        bad = [k for k in data if len(k) != 64 or any(c not in "0123456789abcdefABCDEF" for c in k)]
        if bad:
            raise ConfigError(f"api keys file {path}: not a sha256 hex digest: {bad[0][:16]}...")
        return cls(data)

    def user_for(self, authorization: str | None) -> str:
        if not authorization or not authorization[:7].lower() == "bearer ":
            raise Unauthorized("missing bearer API key", reason="unauthorized")
        digest = hashlib.sha256(authorization[7:].strip().encode()).hexdigest()
        user = self.hashes.get(digest)
        if user is None:
            raise Unauthorized("unknown API key", reason="unauthorized")
        return user
