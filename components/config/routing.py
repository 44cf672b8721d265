"""Stack config for gateways and routes (seeds 000 invoke routes, 002 served-model bypass)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from ._base import Strict, dns_label
from .serving import RouteOverride

Name = Annotated[str, AfterValidator(dns_label)]
_BASE_PATH = re.compile(r"^(/[a-z0-9][a-z0-9._-]*)+$")

# GKE Inference Gateway supports only the regional Envoy-based classes (seed 001 limits).
GATEWAY_CLASSES = ("gke-l7-regional-external-managed", "gke-l7-rilb")
INTERNAL_CLASSES = ("gke-l7-rilb",)


class TlsConfig(Strict):
    certificate_secret: str | None = None
    """A kubernetes.io/tls Secret in the gateway's namespace."""
    certificate_manager_certificates: list[str] = []
    """Regional Certificate Manager certificate names (networking.gke.io/cert-manager-certs)."""

    @model_validator(mode="after")
    def _one_source(self):
        if bool(self.certificate_secret) == bool(self.certificate_manager_certificates):
            raise ValueError("set exactly one of certificate_secret or certificate_manager_certificates")
        return self


class ListenerConfig(Strict):
    name: Name
    protocol: Literal["HTTP", "HTTPS"] = "HTTP"
    port: int = Field(80, ge=1, le=65535)
    hostname: str | None = None
    tls: TlsConfig | None = None

    @model_validator(mode="after")
    def _tls(self):
        if self.protocol == "HTTPS" and self.tls is None:
            raise ValueError("an HTTPS listener needs tls (certificate_secret or certificate_manager_certificates)")
        if self.protocol == "HTTP" and self.tls is not None:
            raise ValueError("tls is set on an HTTP listener; use protocol: HTTPS")
        return self


class HeaderMatchConfig(Strict):
    name: str
    value: str
    type: Literal["Exact", "RegularExpression"] = "Exact"


class MatchConfig(Strict):
    path_prefix: str | None = None
    path_exact: str | None = None
    headers: list[HeaderMatchConfig] = []
    method: Literal["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"] | None = None

    @model_validator(mode="after")
    def _one_path(self):
        if self.path_prefix and self.path_exact:
            raise ValueError("set path_prefix or path_exact, not both")
        for p in (self.path_prefix, self.path_exact):
            if p is not None and not p.startswith("/"):
                raise ValueError(f"path {p!r} must start with '/'")
        return self


class BackendConfig(Strict):
    pool: Name
    weight: int = Field(1, ge=0, le=1_000_000)


class RouteConfig(Strict):
    """One endpoint on a gateway: requests it accepts and the pool(s) that serve them."""

    name: Name
    pool: Name | None = None
    backends: list[BackendConfig] = []
    """Weighted pools for blue/green of a whole base model (instead of `pool`)."""
    predict_route: str | None = None
    """Expose exactly this path (e.g. /v1/chat/completions) and nothing else."""
    invoke_route_prefix: str | None = None
    """'/*' (seed 000): /invoke/<path> reaches the server as /<path>, for the runtime's client API
    paths only (/invoke/v1/chat/completions -> /v1/chat/completions); nothing else under /invoke."""
    base_path: str | None = None
    """The route's own base URL (like seed 004's /serving-endpoints/<name>): the runtimes' client API
    under this path, e.g. base_path /openai-chat: /openai-chat/v1/chat/completions reaches the server
    as /v1/chat/completions, nothing else under it does. invoke_route_prefix with another prefix; an
    OpenAI client takes base_url <gateway><base_path>/v1. Endpoints whose APIs share paths (two chat
    models on different pools) can so share one gateway."""
    path_prefix: str = "/"
    """Used when none of predict_route, invoke_route_prefix, base_path is set (seed 001: '/')."""
    matches: list[MatchConfig] = []
    """Narrow the endpoint: each match becomes its own rule in place of the plain one. A match
    without a path keeps the endpoint's path (predict_route, /invoke/ or path_prefix) and adds
    its headers / method; on plain path_prefix routes a match may also set its own path."""
    hostnames: list[str] = []
    served_model_routes: bool = True
    """Reach one served model directly, bypassing its traffic split: on path_prefix routes
    POST /served-models/<served name>/invocations (seed 002); on any route the header
    `x-deployed-model-id: <served name>` (seed 000), resolved by the pool's picker (an unknown
    name is a 404). False: no served-model paths, and the gateway removes the header."""
    invocations_path: str | None = None
    """Where /served-models/<name>/invocations lands on the model server. Default: the runtime's
    own inference path (vLLM /v1/chat/completions, Caikit+TGIS /api/v1/task/text-generation,
    Caikit standalone /api/v1/task/embedding, KServe v2 /v2/models/<target>/infer); gRPC pools
    have none (their served models are addressed with x-deployed-model-id only)."""
    kind: Literal["HTTPRoute", "GRPCRoute"] = "HTTPRoute"
    """The Gateway API route kind. gRPC runtimes are routed with HTTPRoute (exact
    /<package.Service>/<Method> paths); GRPCRoute is refused because GKE's gateway classes do
    not implement it."""
    expose: list[RouteOverride] = []
    """Widen the route beyond its runtimes' client API (``{path, match: Exact|PathPrefix}``), e.g.
    vLLM's /tokenize. Admin and internal endpoints (adapter load/unload, /metrics, cache reset,
    sleep/wake, profiling, health) are refused; `igw validate` lists what each route exposes."""

    @field_validator("invoke_route_prefix")
    @classmethod
    def _only_star(cls, v):
        if v is not None and v != "/*":
            raise ValueError(f"{v!r} is not supported; '/*' is the only allowed invoke_route_prefix")
        return v

    @model_validator(mode="after")
    def _shape(self):
        if sum(x is not None for x in (self.predict_route, self.invoke_route_prefix, self.base_path)) > 1:
            raise ValueError("set only one of predict_route, invoke_route_prefix or base_path")
        if self.base_path is not None and not _BASE_PATH.match(self.base_path):
            raise ValueError(
                f"base_path {self.base_path!r} is invalid; use /<segment>[/<segment>...] of lowercase letters, "
                "digits, '.', '_' or '-', without a trailing '/'"
            )
        if self.base_path is not None and self.base_path.split("/")[1] in ("served-models", "invoke"):
            raise ValueError(f"base_path {self.base_path!r} is under a path the gateway reserves (/served-models, /invoke)")
        if self.predict_route is not None and not self.predict_route.startswith("/"):
            raise ValueError(f"predict_route {self.predict_route!r} must start with '/'")
        if bool(self.pool) == bool(self.backends):
            raise ValueError("set exactly one of pool or backends")
        if self.backends and sum(b.weight for b in self.backends) == 0:
            raise ValueError("backends weights sum to 0; at least one pool must receive traffic")
        pools = [b.pool for b in self.backends]
        for p in sorted({p for p in pools if pools.count(p) > 1}):
            raise ValueError(f"backends list pool {p!r} twice; list each pool once with its weight")
        if not self.path_prefix.startswith("/"):
            raise ValueError(f"path_prefix {self.path_prefix!r} must start with '/'")
        if self.invocations_path is not None and not self.invocations_path.startswith("/"):
            raise ValueError(f"invocations_path {self.invocations_path!r} must start with '/'")
        if self.predict_route or self.invoke_route_prefix or self.base_path:
            kind = "predict_route" if self.predict_route else "invoke_route_prefix" if self.invoke_route_prefix else "base_path"
            for i, m in enumerate(self.matches):
                if m.path_prefix or m.path_exact:
                    raise ValueError(
                        f"matches[{i}] sets a path but the route uses {kind}, which fixes the path; "
                        "use headers or method only"
                    )
        if len(self.matches) > 8:
            raise ValueError(f"{len(self.matches)} matches; at most 8 are allowed per route")
        return self

    @property
    def shape(self) -> str:
        """predict | invoke | prefix: how requests reach the model server."""
        if self.predict_route:
            return "predict"
        if self.invoke_route_prefix or self.base_path:
            return "invoke"
        return "prefix"

    @property
    def mount(self) -> str:
        """Where an invoke-shaped route mounts the client API: /invoke or base_path."""
        return self.base_path or "/invoke"

    @property
    def pools(self) -> list[str]:
        return [self.pool] if self.pool else [b.pool for b in self.backends]


class GatewayConfig(Strict):
    name: Name
    class_: Literal["gke-l7-regional-external-managed", "gke-l7-rilb"] = Field(
        "gke-l7-regional-external-managed", alias="class"
    )
    listeners: list[ListenerConfig] = [ListenerConfig(name="http")]
    static_address: str | None = None
    """Name of a reserved regional static IP (NamedAddress); `create_address` reserves one."""
    create_address: bool = False
    global_access: bool = False
    """Internal (gke-l7-rilb) gateways only: allow clients from other regions."""
    routes: list[RouteConfig] = []
    model_armor: bool | None = None
    """Attach the Model Armor traffic extension. Unset: model_armor.gateways decides when it is
    set, else every external gateway is guarded once model_armor has guards. Streamed responses
    are not sanitized by Model Armor."""

    @property
    def internal(self) -> bool:
        return self.class_ in INTERNAL_CLASSES

    @model_validator(mode="after")
    def _checks(self):
        if self.global_access and not self.internal:
            raise ValueError("global_access applies to internal (gke-l7-rilb) gateways only")
        if self.static_address and self.create_address:
            raise ValueError("set static_address (adopt a reserved IP) or create_address, not both")
        names = [l.name for l in self.listeners]
        if len(set(names)) != len(names):
            raise ValueError("listener names must be unique")
        routes = [r.name for r in self.routes]
        if len(set(routes)) != len(routes):
            raise ValueError("route names must be unique within a gateway")
        return self


class ObservabilityConfig(Strict):
    """Managed Prometheus scraping, a Cloud Monitoring dashboard and alert policies."""

    pod_monitoring: bool = True
    """PodMonitoring objects for model servers and pickers (Google Cloud Managed Prometheus)."""
    scrape_interval: str = Field("15s", pattern=r"^[1-9][0-9]*(s|m)$")
    dashboard: bool = True
    alerts: bool = True
    notification_channels: list[str] = []
    """Existing channels by full name: projects/<project>/notificationChannels/<id>."""
    notification_emails: list[str] = []
    """E-mail addresses: an e-mail notification channel is created for each."""
    saturation_alert_minutes: int = Field(10, ge=1)
    """How long saturation must last before the alert fires."""
    queue_depth_threshold: float = Field(10, gt=0)
    """Waiting requests per model-server pod counted as saturated."""
    kv_cache_threshold: float = Field(0.9, gt=0, le=1)
    """KV-cache use (0-1) per pod counted as saturated."""
    picker_unavailable_minutes: int = Field(3, ge=1)

    @field_validator("notification_channels")
    @classmethod
    def _channel_names(cls, v: list[str]):
        for c in v:
            if not re.match(r"^projects/[^/]+/notificationChannels/[^/]+$", c):
                raise ValueError(f"{c!r} is not a channel name; use projects/<project>/notificationChannels/<id>")
        return v

    @field_validator("notification_emails")
    @classmethod
    def _emails(cls, v: list[str]):
        for e in v:
            if not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", e):
                raise ValueError(f"{e!r} is not an e-mail address")
        return v


def guarded_gateways(gateways, model_armor) -> list[str]:
    """Gateways that get the Model Armor extension. A gateway's own `model_armor` wins; otherwise
    `model_armor.gateways` when set; otherwise every external gateway."""
    if model_armor is None or not model_armor.guards:
        return []
    out = []
    for g in gateways:
        if g.model_armor is not None:
            on = g.model_armor
        elif model_armor.gateways is not None:
            on = g.name in model_armor.gateways
        else:
            on = not g.internal
        if on:
            out.append(g.name)
    return out


def gateway_rules(cfg) -> list[str]:
    """Cross-field rules for gateways (called from stack_rules.stack_rules once pools and models are valid):
    served-model names unique per gateway, Model Armor wiring. Limits that only a render can tell
    (HTTPRoute rule count, extension metadata size) are in components/builders/render_limits.py."""
    from .exposure import exposure_problems
    from .runtime_rules import runtime_problems
    from .served_models import served_target_conflicts, served_targets

    problems: list[str] = runtime_problems(cfg) + exposure_problems(cfg)
    for i, g in enumerate(cfg.gateways):
        pools = [p for r in g.routes if r.served_model_routes for p in r.pools]
        for a, b in served_target_conflicts(served_targets(cfg.models, pools)):
            problems.append(
                f"gateways[{i}]: served name {a.name!r} means {a.model!r} (pool {a.pool!r}) and {b.model!r} "
                f"(pool {b.pool!r}); give the targets distinct names (models[].targets[].name)"
            )
        if g.model_armor and (cfg.model_armor is None or not cfg.model_armor.guards):
            problems.append(f"gateways[{i}].model_armor: true needs model_armor with templates and guards")
    return problems
