"""Stack config for gateways and routes (seeds 000 invoke routes, 002 served-model bypass)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from ._base import Strict, dns_label

Name = Annotated[str, AfterValidator(dns_label)]

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
    """'/*' exposes every non-root path under /invoke: /invoke/foo/bar reaches the server as /foo/bar."""
    path_prefix: str = "/"
    """Used when neither predict_route nor invoke_route_prefix is set (seed 001: '/')."""
    matches: list[MatchConfig] = []
    """Extra matches (path and headers) as users configure them; each becomes its own rule."""
    hostnames: list[str] = []
    served_model_routes: bool = True
    """Add /served-models/<name>/invocations per served model of the pool (bypasses the split)."""
    invocations_path: str = "/v1/chat/completions"
    """Where /served-models/<name>/invocations lands on the model server."""

    @field_validator("invoke_route_prefix")
    @classmethod
    def _only_star(cls, v):
        if v is not None and v != "/*":
            raise ValueError(f"{v!r} is not supported; '/*' is the only allowed invoke_route_prefix")
        return v

    @model_validator(mode="after")
    def _shape(self):
        if self.predict_route and self.invoke_route_prefix:
            raise ValueError("set only one of predict_route or invoke_route_prefix")
        if self.predict_route is not None and not self.predict_route.startswith("/"):
            raise ValueError(f"predict_route {self.predict_route!r} must start with '/'")
        if bool(self.pool) == bool(self.backends):
            raise ValueError("set exactly one of pool or backends")
        if self.backends and sum(b.weight for b in self.backends) == 0:
            raise ValueError("backends weights sum to 0; at least one pool must receive traffic")
        return self

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
    """Attach the Model Armor traffic extension; default: on for external gateways when
    model_armor is configured."""

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
    dashboard: bool = True
    alerts: bool = True
    notification_channels: list[str] = []
    saturation_alert_minutes: int = Field(10, ge=1)
