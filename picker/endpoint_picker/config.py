"""PickerConfig: the `picker.yaml` schema (ConfigMap key), validated strictly.

An empty config `{}` is valid and gives the benchmarked defaults (queue 2, kv-cache 1, prefix 5,
LoRA affinity 1, in-flight load 2, max-score picker, 3 endpoints per decision). The reference
picker's weights (queue 2, kv 2, prefix 3) are one `scheduling.scorers` list away; the defaults
beat them on every workload in benchmarks/results/README.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import ConfigError


# GKE-style criticality → InferenceObjective.spec.priority. Negative priorities are sheddable.
# Exported so the IaC side renders objectives from the same numbers the picker documents.
CRITICALITY_PRIORITY: dict[str, int] = {"Critical": 100, "Standard": 0, "Sheddable": -10}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PluginSpec(_Strict):
    """One filter or picker: a registered kebab-case type plus its parameters."""

    type: str
    parameters: dict[str, Any] = Field(default_factory=dict)


class ScorerSpec(PluginSpec):
    """A scorer and its weight; the total score is sum(weight * clamp(score, 0, 1))."""

    weight: float = Field(default=1.0, ge=0)


# The shipped scorer weights, written down only here: `{}` uses them and the IaC renders every
# pool's picker.yaml from this table (components/builders/inference_pool.py), so they cannot
# drift apart. Chosen by the weight search on the benchmark's training workloads and judged on
# held-out ones (benchmarks/results/README.md). Prefix affinity needs the larger weight: two load
# scorers at the reference's 2+2 against prefix 3 dilute it (GIE #1827).
DEFAULT_SCORER_WEIGHTS: dict[str, float] = {
    "queue-scorer": 2,
    "kv-cache-utilization-scorer": 1,
    "prefix-cache-scorer": 5,
    # Neutral (all 1.0) unless some pod reports LoRA adapters, so it is safe to keep on.
    "lora-affinity-scorer": 1,
    # Picker-side in-flight counts: spreads bursts that all see the same stale scrape.
    "inflight-load-scorer": 2,
}


def _default_scorers() -> list[ScorerSpec]:
    return [ScorerSpec(type=t, weight=w) for t, w in DEFAULT_SCORER_WEIGHTS.items()]


class SchedulingConfig(_Strict):
    filters: list[PluginSpec] = Field(default_factory=list)
    scorers: list[ScorerSpec] = Field(default_factory=_default_scorers)
    picker: PluginSpec = Field(default_factory=lambda: PluginSpec(type="max-score-picker"))


class SaturationConfig(_Strict):
    """Utilization saturation detector: endpoint = max(q/queue_threshold, kv/kv_cache_threshold)."""

    queue_threshold: float = Field(default=5, gt=0)
    kv_cache_threshold: float = Field(default=0.8, gt=0, le=1)
    # Metrics older than this count as fully saturated (fail closed for sheddable traffic). 300 =
    # three scrape intervals: a scrape of a busy real vLLM took up to ~100 ms (picker/README.md).
    metrics_staleness_ms: int = Field(default=300, gt=0)
    # Used for endpoints without engine metrics: saturation = in-flight / max_concurrency.
    max_concurrency: int = Field(default=100, gt=0)
    # Overload bounds for traffic that is never shed (priority >= 0): at this pool saturation a
    # request gets 503 rejected-overloaded instead of joining queues that only grow, so what is
    # admitted waits a bounded time. None (the reference's behaviour): never rejected.
    overload_threshold: float | None = Field(default=None, gt=1)
    # The same for priority > 0 (Critical); defaults to overload_threshold.
    critical_overload_threshold: float | None = Field(default=None, gt=1)

    @model_validator(mode="after")
    def _critical_not_below(self):
        o, c = self.overload_threshold, self.critical_overload_threshold
        if o is not None and c is not None and c < o:
            raise ValueError(f"critical_overload_threshold ({c:g}) must be at least overload_threshold ({o:g}): "
                             "critical traffic is rejected last")
        return self


class FlowControlConfig(_Strict):
    """Hold requests in the picker instead of refusing them (flow_control.py): while the pool has
    no ready endpoint (scale from zero), and while it is saturated (pool saturation >= 1), queued
    by priority (higher first), round-robin between clients (the identity per-user rate limits
    use) within a priority, first come first served per client. Bounded per priority by count,
    bytes and time; what does not fit is refused as without flow control (admission.py)."""

    max_requests_per_priority: int = Field(default=1000, ge=1)
    max_bytes_per_priority: int = Field(default=256 * 1024 * 1024, ge=1)
    # How long a request may wait at saturation (then 429/503 rejected-ttl-expired).
    ttl_s: float = Field(default=30.0, gt=0, le=3600)
    # How long a request may wait for a pool with no ready endpoint to get one (scale from zero;
    # then 503 rejected-no-endpoints). The reference's noEndpointRequestTTL is 60 s.
    no_endpoint_ttl_s: float = Field(default=60.0, gt=0, le=3600)


class ScrapeConfig(_Strict):
    # 100 ms: half the CPU a 50 ms tick costs vLLM's API process (~6% of a core per picker replica
    # and server instead of ~11%, measured on real vLLM), metrics ~55 ms old on average
    # (picker/README.md, "Scrape interval").
    interval_ms: int = Field(default=100, ge=5)
    timeout_ms: int = Field(default=1000, gt=0)
    path: str = "/metrics"
    # `none`: the runtime exposes no vLLM metrics; schedule and saturate on in-flight load only.
    engine: Literal["vllm", "none"] = "vllm"


class ModelsConfig(_Strict):
    served: list[str] = Field(default_factory=list)
    # 404 for a model outside `served` (after rewrites are resolved).
    reject_unknown: bool = False
    # Seed 000's deployed-model ids of this pool: `x-deployed-model-id: <id>` serves exactly this
    # model (bypassing the split); an id not listed here is a 404 (deployed-model-not-found).
    deployed: dict[str, str] = Field(default_factory=dict)
    # The pool's model-server API: where a request on a path that names no API (seed 002's
    # /served-models/<name>/invocations, before the gateway rewrites it) carries its model.
    # caikit: `model_id`; openai and others: `model`.
    api: Literal["openai", "caikit", "kserve-v2", "tgis-grpc"] = "openai"


class RateLimit(_Strict):
    """`calls` per `renewal_period` per user (key=user) or for the whole pool (key=endpoint)."""

    key: Literal["user", "endpoint"]
    calls: int = Field(gt=0)
    renewal_period: Literal["second", "minute", "hour", "day"] = "minute"
    model: str | None = None


class AuthConfig(_Strict):
    """Who a request comes from (per-user rate limits): the API key's user, else the client address
    the gateway appended to `client_address_header`, counted `client_address_hop` entries from the
    right (1: the last entry, as an Envoy with use_remote_address appends it; GKE's regional
    Application Load Balancers append `<client-ip>,<load-balancer-ip>`, so 2). Entries further
    left are whatever the client sent and are never used."""

    client_address_header: str = "x-forwarded-for"
    client_address_hop: int = Field(default=1, ge=1, le=16)
    # Only behind a proxy that authenticates users and overwrites this header: otherwise a client
    # picks its own identity (and its own rate-limit bucket). Off by default.
    user_header: str | None = None


class ExtProcConfig(_Strict):
    """Must match the Envoy ext_proc filter's processing_mode."""

    # h2: the picker's own HTTP/2 gRPC server (grpc_h2.py), 3-5x less CPU per request than
    # grpcio's asyncio server (benchmarks/results), which stays available as the fallback.
    transport: Literal["h2", "grpcio"] = "h2"
    request_body_mode: Literal["FULL_DUPLEX_STREAMED", "BUFFERED"] = "FULL_DUPLEX_STREAMED"
    response_body_mode: Literal["FULL_DUPLEX_STREAMED", "STREAMED", "NONE"] = "FULL_DUPLEX_STREAMED"
    # Some Envoys cap a body message at 64 KiB; stay below it.
    chunk_size: int = Field(default=62_000, gt=0, le=62_000)
    drain_timeout_s: float = Field(default=30, ge=0)
    # Bodies larger than this are rejected with 400 rather than buffered without bound.
    max_body_bytes: int = Field(default=64 * 1024 * 1024, gt=0)


class PickerConfig(_Strict):
    scheduling: SchedulingConfig = Field(default_factory=SchedulingConfig)
    saturation: SaturationConfig = Field(default_factory=SaturationConfig)
    scrape: ScrapeConfig = Field(default_factory=ScrapeConfig)
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    rate_limits: list[RateLimit] = Field(default_factory=list)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    ext_proc: ExtProcConfig = Field(default_factory=ExtProcConfig)
    # None (the reference's default, its flowControl gate off): never hold a request.
    flow_control: FlowControlConfig | None = None

    @model_validator(mode="after")
    def _plugins_exist(self) -> PickerConfig:
        # Imported here: the registry imports plugin modules, which must not import config.
        from .scheduling.registry import build_registry

        build_registry().validate(self.scheduling)
        return self

    @model_validator(mode="after")
    def _staleness_above_interval(self) -> PickerConfig:
        stale, every = self.saturation.metrics_staleness_ms, self.scrape.interval_ms
        if self.scrape.engine == "vllm" and stale <= every:
            raise ValueError(f"saturation.metrics_staleness_ms ({stale}) must be above scrape.interval_ms ({every}): "
                             "every endpoint would count as stale (saturated) between two scrapes")
        return self


def _format(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e["loc"]).lstrip(".")
        msg = e["msg"].removeprefix("Value error, ")
        lines.append(f"{path}: {msg}" if path else msg)
    return "; ".join(lines)


def load_config(source: str | Path | dict[str, Any] | None) -> PickerConfig:
    """Load and validate a config from a YAML path or a dict; raises ConfigError with the path."""
    if source is None:
        data: Any = {}
    elif isinstance(source, dict):
        data = source
    else:
        try:
            data = yaml.safe_load(Path(source).read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise ConfigError(f"cannot read config {source}: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError("config: expected a mapping at the top level")
    try:
        return PickerConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format(e)) from None
