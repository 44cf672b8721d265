"""In-memory state the decision path reads: endpoints, their last metrics, objectives, rewrites.

Discovery replaces whole collections (copy-on-write), the scraper replaces one endpoint's metrics
snapshot; decisions only read, so no locks are needed on the asyncio loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One schedulable target: a pod address and one of the pool's target ports."""

    name: str
    namespace: str
    address: str
    port: int
    labels: tuple[tuple[str, str], ...] = ()
    # "ip:port" ("[v6]:port"), the form Envoy and the prefix index use; computed once.
    key: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        a = self.address
        object.__setattr__(self, "key", f"[{a}]:{self.port}" if ":" in a else f"{a}:{self.port}")


@dataclass(slots=True)
class Metrics:
    """Last scraped engine metrics of one endpoint (vLLM names)."""

    waiting: float = 0.0
    running: float = 0.0
    kv_usage: float = 0.0
    # vllm:lora_requests_info (newest series): running / waiting adapter lists and max_lora.
    # Real vLLM lists every in-flight adapter in both; scrape.parse_lora explains.
    active_loras: frozenset[str] = frozenset()
    waiting_loras: frozenset[str] = frozenset()
    max_lora: int = 0
    # The family is on the page (LoRA is enabled), even before its first sample.
    lora_enabled: bool = False
    block_size: int = 0
    num_gpu_blocks: int = 0
    # time.monotonic() of the last successful scrape; 0 = never.
    updated_at: float = 0.0
    # Successful scrapes so far: a reader that sees the same count twice saw one view in between.
    scrapes: int = 0
    # False once the endpoint answered 404 for the metrics path: use in-flight load instead.
    supported: bool = True


@dataclass(slots=True)
class InFlight:
    requests: int = 0
    tokens: int = 0
    # Requests this picker sent to the endpoint since its last successful scrape (reset by the
    # scraper): what its scraped queue cannot show yet.
    since_scrape: int = 0


@dataclass(frozen=True, slots=True)
class Pool:
    name: str
    namespace: str
    selector: tuple[tuple[str, str], ...]
    target_ports: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Objective:
    name: str
    priority: int
    model_annotation: str | None = None


@dataclass(frozen=True, slots=True)
class RewriteTarget:
    model: str
    weight: int


@dataclass(frozen=True, slots=True)
class RewriteRule:
    """One InferenceModelRewrite rule; `exact` empty = catch-all."""

    exact: frozenset[str]
    targets: tuple[RewriteTarget, ...]
    # Precedence tiebreak: (creationTimestamp, name, rule index).
    order: tuple[str, str, int]


def parse_objective(obj: dict[str, Any]) -> Objective:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    annotations = meta.get("annotations") or {}
    prio = spec.get("priority")
    return Objective(
        name=meta.get("name", ""),
        priority=int(prio) if prio is not None else 0,
        model_annotation=annotations.get("inference-gateway.dev/model"),
    )


def parse_rewrite(obj: dict[str, Any]) -> list[RewriteRule]:
    meta = obj.get("metadata") or {}
    created = str(meta.get("creationTimestamp") or "")
    name = meta.get("name", "")
    rules = []
    for i, rule in enumerate((obj.get("spec") or {}).get("rules") or []):
        exact = set()
        for m in rule.get("matches") or []:
            model = m.get("model") or {}
            if model.get("type", "Exact") == "Exact" and "value" in model:
                exact.add(str(model["value"]))
        targets = tuple(
            RewriteTarget(model=str(t["modelRewrite"]), weight=int(t.get("weight", 1) or 1))
            for t in rule.get("targets") or []
            if t.get("modelRewrite")
        )
        if targets:
            rules.append(RewriteRule(exact=frozenset(exact), targets=targets, order=(created, name, i)))
    return rules


def pool_ref_name(obj: dict[str, Any]) -> str | None:
    ref = (obj.get("spec") or {}).get("poolRef") or {}
    return ref.get("name")


def parse_pool(obj: dict[str, Any]) -> Pool:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    sel = spec.get("selector") or {}
    match = sel.get("matchLabels", sel) or {}
    ports = tuple(int(p["number"]) for p in spec.get("targetPorts") or [] if "number" in p)
    return Pool(
        name=meta.get("name", ""),
        namespace=meta.get("namespace", "default"),
        selector=tuple(sorted((str(k), str(v)) for k, v in match.items())),
        target_ports=ports,
    )


def selector_matches(selector: tuple[tuple[str, str], ...], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector)


class Datastore:
    def __init__(self) -> None:
        self.pool: Pool | None = None
        self.endpoints: dict[str, Endpoint] = {}
        self.metrics: dict[str, Metrics] = {}
        self.inflight: dict[str, InFlight] = {}
        self.objectives: dict[str, Objective] = {}
        self.objectives_by_model: dict[str, Objective] = {}
        self.rewrites: list[RewriteRule] = []
        # target model -> the client-facing models whose Exact rewrite rules split traffic to it.
        self.rewrite_owners: dict[str, frozenset[str]] = {}
        # True once discovery has loaded the pool at least once.
        self.synced = False
        self.generation = 0

    # --- writers (discovery) ---
    def set_pool(self, pool: Pool | None) -> None:
        self.pool = pool

    def set_endpoints(self, endpoints: list[Endpoint]) -> None:
        new = {e.key: e for e in endpoints}
        self.endpoints = new
        self.metrics = {k: self.metrics.get(k) or Metrics() for k in new}
        self.inflight = {k: self.inflight.get(k) or InFlight() for k in new}
        self.generation += 1

    def set_objectives(self, objectives: list[Objective]) -> None:
        self.objectives = {o.name: o for o in objectives}
        by_model: dict[str, Objective] = {}
        for o in sorted(objectives, key=lambda o: o.name):
            if o.model_annotation and o.model_annotation not in by_model:
                by_model[o.model_annotation] = o
        self.objectives_by_model = by_model

    def set_rewrites(self, rules: list[RewriteRule]) -> None:
        # Exact rules first, then catch-alls; each group oldest resource first, then rule order.
        self.rewrites = sorted(rules, key=lambda r: (not r.exact, r.order))
        owners: dict[str, set[str]] = {}
        for r in rules:
            for t in r.targets:
                owners.setdefault(t.model, set()).update(r.exact)
        self.rewrite_owners = {k: frozenset(v) for k, v in owners.items() if v}

    # --- readers (decision path) ---
    def priority_for(self, objective_header: str | None, model: str | None) -> int:
        if objective_header:
            o = self.objectives.get(objective_header)
            if o is not None:
                return o.priority
        if model:
            o = self.objectives.get(model) or self.objectives_by_model.get(model)
            if o is not None:
                return o.priority
        return 0

    def served_as(self, model: str) -> frozenset[str]:
        """The client-facing model(s) a request for `model` counts as, for rate limits and
        priority: the model itself when it is client-facing (it has an objective or an Exact
        rewrite rule), else the models whose traffic split targets it (an internal target name
        such as a challenger adapter counts against its owner), else itself."""
        if model in self.objectives or model in self.objectives_by_model or any(model in r.exact for r in self.rewrites):
            return frozenset((model,))
        return self.rewrite_owners.get(model) or frozenset((model,))

    def rewrite_rule_for(self, model: str) -> RewriteRule | None:
        for r in self.rewrites:
            if not r.exact or model in r.exact:
                return r
        return None
