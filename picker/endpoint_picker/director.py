"""Request control: authenticate → parse → rewrite → admit → schedule → account.

Independent of gRPC so it can be driven directly by tests and benchmarks; the ext_proc servicer
(server.py) only translates Envoy messages to and from these calls.

Nothing a client sends picks its own policy:

- identity (per-user rate limits) is the API key's user, else the client address the gateway
  appended to X-Forwarded-For (`auth.client_address_hop` from the right), never a client header;
- a request counts as the served model it is served as (`Datastore.served_as`), however it is
  reached: the served-model path (gateway-set rewrite header), `x-deployed-model-id`, or an
  internal target name asked for directly all meet the owner's rate limits and priority; the
  body's `model` does not count when the gateway forced the target;
- `x-deployed-model-id` must name a deployed model of this pool (`models.deployed`), else 404;
- a path that is not in normal form (dot segments, `//`, a backslash, an encoded dot, slash or
  backslash) is refused (400 path-not-normalized): the gateway normalises paths before matching,
  and this holds even behind a load balancer that does not.

A request is prepared once (`prepare`: everything up to its priority and rate limits), then
admitted, queued or refused (`admission.admit`, the one place that decides), then scheduled.
`route` decides now (no queue); `submit` may hold the request in the flow-control queue
(flow_control.py) and answer through a callback once it leaves the queue.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Callable

import orjson
import xxhash

from .admission import ApiKeys, RateLimiter, Verdict, admit, overload_threshold, pool_saturation
from .config import PickerConfig
from .datastore import Datastore, RewriteRule
from .errors import BadRequest, ModelNotFound, NoEndpoints, RequestError
from .flow_control import FlowController, Held
from .protocol import DEPLOYED_MODEL_HEADER, MODEL_REWRITE_HEADER, OBJECTIVE_HEADERS
from . import grpc_body
from .requests import kserve_path_for, parse_request
from .scheduling.framework import Candidate, Scheduler, SchedulingRequest
from .selfmetrics import SelfMetrics


@dataclass(slots=True)
class Routed:
    endpoints: list[str]
    # Body to forward (the original bytes unless the model was rewritten).
    body: bytes
    client_model: str | None
    target_model: str | None
    # In-flight accounting handles, released by release_*().
    primary: str
    tokens: int
    # New :path when the model lives in the path (KServe v2) and was rewritten; else None.
    path: str | None = None
    # Request headers to set: the model when a header names it (Caikit gRPC's mm-model-id).
    headers: dict[str, str] | None = None
    # The request's API (requests.ParsedRequest.api); gRPC responses are not restored.
    api: str = ""

    @property
    def rewritten(self) -> bool:
        return self.client_model is not None and self.target_model is not None and self.client_model != self.target_model

    @property
    def header_value(self) -> str:
        return ",".join(self.endpoints)


@dataclass(slots=True)
class Prepared:
    """A parsed, authenticated, rate-limited request whose target and priority are known: all that
    scheduling needs, now or when it leaves the flow-control queue."""

    t0: float
    user: str
    priority: int
    client_model: str | None
    target: str | None
    prompt: str
    request_id: str
    body: bytes
    path: str | None
    headers: dict[str, str] | None
    api: str
    subset: list[str] | None
    reason: str  # decisions_total reason: scheduled | bodyless


def pick_rewrite(rule: RewriteRule, request_id: str, rng: random.Random) -> str:
    """Weighted target; deterministic per x-request-id so retries of one request agree."""
    total = sum(t.weight for t in rule.targets)
    point = xxhash.xxh64_intdigest(request_id.encode()) % total if request_id else rng.randrange(total)
    for t in rule.targets:
        if point < t.weight:
            return t.model
        point -= t.weight
    return rule.targets[-1].model


_ENCODED = ("%2e", "%2f", "%5c")


def normalized(path: str) -> bool:
    """Whether the path part of `path` has no dot segments, empty segments or encoded
    separators (RFC 3986 normal form, slashes merged)."""
    p = path.split("?", 1)[0]
    if "//" in p or "\\" in p:
        return False
    if "%" in p and any(e in p.lower() for e in _ENCODED):
        return False
    return "/." not in p or not any(seg in (".", "..") for seg in p.split("/"))


def client_address(forwarded_for: str, hop: int) -> str:
    """The address `hop` entries from the right of X-Forwarded-For: the one the trusted gateway
    appended. Fewer entries than hops means the request did not come through that gateway."""
    entries = [e.strip() for e in forwarded_for.split(",") if e.strip()]
    return entries[-hop] if len(entries) >= hop else "unknown-client-address"


class Director:
    """`clock` is the monotonic clock that metrics ages and rate limits are judged against
    (`time.monotonic`; the virtual-time benchmark passes its simulated clock)."""

    def __init__(self, config: PickerConfig, store: Datastore, scheduler: Scheduler, metrics: SelfMetrics,
                 api_keys: ApiKeys | None = None, rng: random.Random | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg = config
        self.clock = clock
        self.store = store
        self.scheduler = scheduler
        self.metrics = metrics
        self.api_keys = api_keys
        self.limiter = RateLimiter(config.rate_limits, clock)
        self.rng = rng or random.Random()
        self.engine = config.scrape.engine != "none"
        self.staleness_s = config.saturation.metrics_staleness_ms / 1000.0
        self.served = frozenset(config.models.served)
        self._generation = store.generation
        # One Candidate per endpoint, rebuilt when discovery changes the set; per request only
        # their freshness flags are updated (metrics and in-flight objects are updated in place).
        self._pool: dict[str, Candidate] = {}
        self._pool_generation = -1
        self.flow = (FlowController(config.flow_control, self._pool_state, self._dispatch, metrics, clock)
                     if config.flow_control is not None else None)
        if self.flow is not None:
            metrics.flow_depth = self.flow.queue.depth

    def _user(self, headers: dict[str, str]) -> str:
        if self.api_keys is not None:
            return self.api_keys.user_for(headers.get("authorization"))
        auth = self.cfg.auth
        if auth.user_header:
            user = headers.get(auth.user_header)
            if user:
                return user
        return client_address(headers.get(auth.client_address_header, ""), auth.client_address_hop)

    def _deployed(self, headers: dict[str, str]) -> str | None:
        """The model named by `x-deployed-model-id`, None without the header; 404 when unknown."""
        deployed = headers.get(DEPLOYED_MODEL_HEADER)
        if deployed is None:
            return None
        model = self.cfg.models.deployed.get(deployed)
        if model is None:
            known = ", ".join(sorted(self.cfg.models.deployed)) or "none"
            raise ModelNotFound(f"x-deployed-model-id '{deployed}' is not deployed behind this endpoint (deployed: {known})",
                                reason="deployed-model-not-found")
        return model

    def _priority(self, objective: str | None, served_as: frozenset[str]) -> int:
        """The named objective (the gateway strips client-sent objective headers), else the
        lowest priority of the served models the request counts as."""
        if objective:
            o = self.store.objectives.get(objective)
            if o is not None:
                return o.priority
        return min((self.store.priority_for(None, m) for m in served_as), default=0)

    def prepare(self, path: str, headers: dict[str, str], body: bytes, subset: list[str] | None = None) -> Prepared:
        """Authenticate, parse, rewrite, prioritise and rate-limit. Raises a RequestError to reject."""
        t0 = time.perf_counter()
        if not normalized(path):
            raise BadRequest("the request path is not in normal form (dot segments, '//' or encoded separators)",
                             reason="path-not-normalized")
        user = self._user(headers)  # 401 before any work
        parsed = parse_request(path, headers, body, self.cfg.models.api)
        client_model = parsed.model
        forced = headers.get(MODEL_REWRITE_HEADER) or self._deployed(headers)
        if client_model is None and body and parsed.api != "grpc":
            if not (forced and parsed.body is not None and parsed.model_key is not None):
                raise BadRequest("request has no model", reason="missing-model")
            client_model = forced  # a served-model request needs no model in its body (seed 002)
            parsed.body[parsed.model_key] = forced
            body = orjson.dumps(parsed.body)
        target = client_model
        new_body = body
        new_path = None
        new_headers = None
        if client_model is not None:
            if forced:
                target = forced
            else:
                rule = self.store.rewrite_rule_for(client_model)
                if rule is not None:
                    target = pick_rewrite(rule, headers.get("x-request-id", ""), self.rng)
            if self.cfg.models.reject_unknown and target not in self.served and client_model not in self.served:
                raise ModelNotFound(f"model '{client_model}' is not served by this pool", reason="model-not-found")
            if target != client_model:
                if parsed.api == "kserve":
                    new_path = kserve_path_for(path, target)  # KServe v2 names the model in the path
                elif parsed.api == "grpc":
                    if parsed.model_key == grpc_body.MODEL_HEADER:
                        new_headers = {grpc_body.MODEL_HEADER: target}
                    elif parsed.model_key is not None:
                        new_body = grpc_body.replace_model(body, target)
                elif parsed.body is not None and parsed.model_key is not None:
                    parsed.body[parsed.model_key] = target
                    new_body = orjson.dumps(parsed.body)  # the only re-serialization
        named = forced if forced and client_model is not None else client_model
        served_as = self.store.served_as(named) if named is not None else frozenset()
        objective = headers.get(OBJECTIVE_HEADERS[0]) or headers.get(OBJECTIVE_HEADERS[1])
        priority = self._priority(objective, served_as)
        self.limiter.check(user, served_as)
        return Prepared(t0, user, priority, client_model, target, parsed.prompt, headers.get("x-request-id", ""), new_body,
                        new_path, new_headers, parsed.api, subset, "scheduled" if body or client_model else "bodyless")

    def route(self, path: str, headers: dict[str, str], body: bytes, subset: list[str] | None = None) -> Routed:
        """Decide where a request goes, now (nothing is queued). Raises a RequestError to reject it."""
        req = self.prepare(path, headers, body, subset)
        candidates = self._pool_candidates(subset)
        priority = req.priority
        # Only sheddable or bounded traffic pays for the saturation check.
        needs = candidates and (priority < 0 or overload_threshold(priority, self.cfg.saturation) is not None)
        saturation = pool_saturation(((c.metrics, c.inflight) for c in candidates), self.cfg.saturation, self.engine,
                                     self.clock()) if needs else 0.0
        admit(priority, saturation, self.cfg.saturation, None, endpoints=bool(candidates), room=False, queued_ahead=False)
        return self._schedule(req, candidates)

    def submit(self, path: str, headers: dict[str, str], body: bytes, subset: list[str] | None,
               deliver: Callable[[Routed | RequestError], None]) -> tuple[Routed | None, Held | None]:
        """Like `route`, but with flow control a request the pool cannot take now is held:
        returns (None, its place in the queue) and `deliver` gets the decision or the refusal
        later. Without flow control this is `route`."""
        flow = self.flow
        if flow is None:
            return self.route(path, headers, body, subset), None
        req = self.prepare(path, headers, body, subset)
        candidates = self._pool_candidates(subset)
        saturation = self._saturation(candidates) if candidates else 1.0
        size = len(req.body)
        verdict = admit(req.priority, saturation, self.cfg.saturation, self.cfg.flow_control, endpoints=bool(candidates),
                        room=flow.room(req.priority, size), queued_ahead=flow.queued_at_or_above(req.priority))
        if verdict is Verdict.ADMIT:
            return self._schedule(req, candidates), None
        return None, flow.enqueue(req, req.priority, req.user, size, subset, bool(candidates), deliver)

    def _saturation(self, candidates: list[Candidate]) -> float:
        """Pool saturation with this picker's sends since each scrape counted (flow control)."""
        return pool_saturation(((c.metrics, c.inflight) for c in candidates), self.cfg.saturation, self.engine,
                               self.clock(), pending=True)

    def _pool_state(self, subset: list[str] | None) -> tuple[bool, float]:
        candidates = self._pool_candidates(subset)
        return (True, self._saturation(candidates)) if candidates else (False, 1.0)

    def _dispatch(self, req: Prepared) -> Routed:
        """A request leaves the queue: schedule it on the pool as it is now."""
        req.t0 = time.perf_counter()  # decision latency excludes the wait (flow-control metrics have it)
        candidates = self._pool_candidates(req.subset)
        if not candidates:
            raise NoEndpoints("no eligible endpoints", reason="rejected-no-endpoints")
        return self._schedule(req, candidates)

    def _pool_candidates(self, subset: list[str] | None) -> list[Candidate]:
        if self._generation != self.store.generation:
            self._generation = self.store.generation
            self.scheduler.endpoints_changed(set(self.store.endpoints))
        return self._candidates(subset)

    def _schedule(self, req: Prepared, candidates: list[Candidate]) -> Routed:
        sreq = SchedulingRequest(target_model=req.target or "", prompt=req.prompt, request_id=req.request_id,
                                 priority=req.priority)
        decision = self.scheduler.schedule(sreq, candidates)
        if not decision.chosen:
            raise NoEndpoints("scheduler found no endpoint", reason="rejected-no-endpoints")
        primary = decision.chosen[0]
        tokens = len(req.prompt) // 4
        f = primary.inflight
        f.requests += 1
        f.tokens += tokens
        f.since_scrape += 1
        self.metrics.decided(primary.key, req.reason, time.perf_counter() - req.t0)
        return Routed([c.key for c in decision.chosen], req.body, req.client_model, req.target, primary.key, tokens,
                      req.path, req.headers, req.api)

    def _candidates(self, subset: list[str] | None) -> list[Candidate]:
        store = self.store
        if self._pool_generation != store.generation:
            self._pool_generation = store.generation
            self._pool = {k: Candidate(ep, store.metrics[k], store.inflight[k]) for k, ep in store.endpoints.items()}
        pool = self._pool
        out = list(pool.values()) if subset is None else [pool[k] for k in subset if k in pool]
        now = self.clock()
        staleness = self.staleness_s
        if not self.engine:
            for c in out:
                c.fresh, c.has_metrics = True, False
            return out
        for c in out:
            m = c.metrics
            # Endpoints without engine metrics are judged on in-flight load, never "stale".
            if m.supported:
                u = m.updated_at
                c.has_metrics = u > 0
                c.fresh = now - u <= staleness
            else:
                c.has_metrics, c.fresh = False, True
        return out

    def release_tokens(self, routed: Routed) -> None:
        """Prefill is over (first response bytes): the prompt no longer loads the endpoint."""
        if routed.tokens:
            f = self.store.inflight.get(routed.primary)
            if f is not None:
                f.tokens = max(0, f.tokens - routed.tokens)
            routed.tokens = 0

    def release_request(self, routed: Routed) -> None:
        self.release_tokens(routed)
        f = self.store.inflight.get(routed.primary)
        if f is not None and f.requests > 0:
            f.requests -= 1
        if self.flow is not None:
            self.flow.kick()  # a slot may have freed up for a queued request

    def moved_to(self, routed: Routed, served: str) -> None:
        """Envoy served the request on a fallback: move the in-flight accounting there."""
        if served == routed.primary or served not in self.store.inflight:
            return
        old = self.store.inflight.get(routed.primary)
        new = self.store.inflight[served]
        if old is not None and old.requests > 0:
            old.requests -= 1
            old.tokens = max(0, old.tokens - routed.tokens)
        new.requests += 1
        new.tokens += routed.tokens
        routed.primary = served
