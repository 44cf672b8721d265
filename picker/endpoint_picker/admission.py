"""Admission: API keys (401), rate limits (429), saturation-based shedding (429), overload (503).

Saturation (utilization detector): endpoint = max(waiting/queue_threshold, kv/kv_threshold),
pool = mean over endpoints; metrics older than the staleness bound count as 1.0 (fail closed).
Only sheddable requests (priority < 0) are shed, and only when pool saturation >= 1. Traffic
that is never shed is bounded instead (when configured): past `overload_threshold` (priority 0)
or `critical_overload_threshold` (priority > 0) it gets 503 at once rather than a place in queues
that only grow, so whatever is admitted waits a bounded time and critical traffic goes last.
"""

from __future__ import annotations

import hashlib
import math
import time
from pathlib import Path
from typing import Iterable

import orjson
import yaml

from .config import RateLimit, SaturationConfig
from .datastore import InFlight, Metrics
from .errors import ConfigError, Overloaded, TooManyRequests, Unauthorized

PERIOD_SECONDS = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}


def endpoint_saturation(m: Metrics, inflight: InFlight, cfg: SaturationConfig, now: float, engine: bool) -> float:
    if not engine or not m.supported:
        return inflight.requests / cfg.max_concurrency
    if now - m.updated_at > cfg.metrics_staleness_ms / 1000.0:
        return 1.0
    return max(m.waiting / cfg.queue_threshold, m.kv_usage / cfg.kv_cache_threshold)


def pool_saturation(pairs: Iterable[tuple[Metrics, InFlight]], cfg: SaturationConfig, engine: bool, now: float | None = None) -> float:
    t = time.monotonic() if now is None else now
    values = [endpoint_saturation(m, f, cfg, t, engine) for m, f in pairs]
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
