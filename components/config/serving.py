"""Stack config for serving: model servers, inference pools, served models (the seeds' vocabulary)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from ._base import Strict, dns_label
from .autoscaling import FlowControlSettings, ServerAutoscaling
from .external import ExternalModelConfig

Name = Annotated[str, AfterValidator(dns_label)]

Runtime = Literal["vllm", "caikit-tgis", "caikit-standalone", "tgis", "openvino", "triton"]
Criticality = Literal["Critical", "Standard", "Sheddable"]
_TAG_KEY = re.compile(r"^[A-Za-z0-9 _.:/=+@-]{1,128}$")


class LoraAdapterConfig(Strict):
    id: str = Field(min_length=1, max_length=256)
    """The model name clients send (and the picker's LoRA affinity key)."""
    source: str = Field(min_length=1)
    """Hugging Face repo or a path the LoRA syncer can load."""


class RouteOverride(Strict):
    path: str = Field(pattern=r"^/")
    match: Literal["Exact", "PathPrefix"] = "Exact"
    protocol: Literal["http", "grpc"] = "http"


class RuntimeOverrides(Strict):
    """Override any field of the runtime preset (components/catalog/runtimes.py)."""

    image: str | None = None
    command: list[str] | None = None
    args: list[str] | None = None
    """Replaces the preset's whole argument list (extra_args is then not appended)."""
    port: int | None = Field(None, ge=1, le=65535)
    grpc_port: int | None = Field(None, ge=1, le=65535)
    health_path: str | None = Field(None, pattern=r"^/")
    readiness_path: str | None = Field(None, pattern=r"^/")
    metrics_path: str | None = Field(None, pattern=r"^/")
    protocol: Literal["http", "grpc"] | None = None
    routes: list[RouteOverride] | None = None
    picker_signals: list[Literal["queue", "kv", "lora", "prefix"]] | None = None
    """Which vLLM-style metrics the server exposes; [] schedules on in-flight load only."""
    env: dict[str, str] | None = None
    """Merged over the preset's environment."""
    run_as_user: int | None = Field(None, ge=0)
    """The UID a custom image runs as (default: the runtime's, components/catalog/hardening.py).
    0 runs the image as root: the pod is not hardened and the namespace drops to Pod Security
    ``baseline``; production stacks reject it (policy ``model-servers-hardened``)."""


class DrainConfig(Strict):
    """Inputs of the seed's drain formula for terminationGracePeriodSeconds (see builders/grace.py)."""

    max_output_tokens: int = Field(4096, ge=1)
    time_per_output_token_ms: float = Field(10.0, gt=0)
    prefill_overhead: float = Field(0.35, ge=0)
    """Fraction added for prompt processing; the seed's worked example goes 40 s -> 55 s."""
    pre_stop_seconds: int = Field(30, ge=0)
    safety_factor: float = Field(1.5, ge=1)


class ResourcesConfig(Strict):
    cpu: str = "8"
    memory: str = "48Gi"
    ephemeral_storage: str | None = "100Gi"


class ModelServerConfig(Strict):
    """One model-server Deployment (vLLM by default, as seed 001)."""

    name: Name
    runtime: Runtime = "vllm"
    runtime_overrides: RuntimeOverrides = RuntimeOverrides()
    model: str = Field(min_length=1)
    """The base model (Hugging Face id for vLLM)."""
    replicas: int = Field(1, ge=0)
    node_pool: Name | None = None
    """GPU node pool (by name) the pods run on; default: the first pool."""
    tensor_parallel_size: int = Field(1, ge=1)
    """Drives nvidia.com/gpu; must fit the pool's machine."""
    enable_lora: bool | None = None
    """vLLM LoRA serving plus the LoRA syncer sidecar. Default: on for runtimes that support it,
    so adding an adapter later only changes the adapters ConfigMap (no pod restart)."""
    max_loras: int = Field(2, ge=1)
    max_cpu_loras: int = Field(12, ge=1)
    max_lora_rank: int | None = Field(None, ge=1)
    lora_adapters: list[LoraAdapterConfig] = []
    extra_models: list[str] = []
    """More models the server loads from its model store beside `model` (multi-model runtimes:
    caikit-tgis, caikit-standalone, openvino, triton), each addressable by its name; vLLM serves
    more models as LoRA adapters, TGIS serves one model per server."""
    extra_args: list[str] = []
    hf_token: bool = True
    """Read the Hugging Face token from the secret config value `hfToken`."""
    resources: ResourcesConfig = ResourcesConfig()
    drain: DrainConfig = DrainConfig()
    startup_timeout_seconds: int = Field(3600, ge=60)
    autoscaling: ServerAutoscaling | None = None
    """Replicas follow demand (components/config/autoscaling.py); `replicas` is then not set."""
    scale_to_zero_enabled: bool = False
    """Seed 002: no replica while idle; requests wait in the picker while one starts. Alone it
    means autoscaling from 0 to `replicas` on the queue; with `autoscaling`, min_replicas must be 0."""
    gcs_bucket: str | None = None
    """Model weights bucket: creates a Workload Identity service account with read access."""

    @field_validator("lora_adapters")
    @classmethod
    def _unique_adapters(cls, v: list[LoraAdapterConfig]):
        seen: set[str] = set()
        for a in v:
            if a.id in seen:
                raise ValueError(f"adapter id {a.id!r} appears twice; adapter ids must be unique")
            seen.add(a.id)
        return v

    @model_validator(mode="after")
    def _loras(self):
        from ..catalog.runtimes import PRESETS

        if self.lora_adapters and self.runtime != "vllm":
            raise ValueError(f"lora_adapters need the vllm runtime; runtime is {self.runtime!r}")
        if self.enable_lora and not PRESETS[self.runtime].supports_lora:
            raise ValueError(f"enable_lora needs the vllm runtime; runtime is {self.runtime!r}")
        if self.lora_adapters and self.enable_lora is False:
            raise ValueError("lora_adapters are set but enable_lora is false; remove the adapters or enable LoRA")
        protocol = self.runtime_overrides.protocol or PRESETS[self.runtime].protocol
        grpc_port = self.runtime_overrides.grpc_port or PRESETS[self.runtime].grpc_port
        if protocol == "grpc" and grpc_port is None:
            raise ValueError(f"runtime_overrides.protocol is grpc but runtime {self.runtime!r} has no gRPC port; set runtime_overrides.grpc_port")
        if self.max_cpu_loras < self.max_loras:
            raise ValueError(f"max_cpu_loras ({self.max_cpu_loras}) must be at least max_loras ({self.max_loras})")
        return self

    @model_validator(mode="after")
    def _extra_models(self):
        from ..catalog.runtimes import PRESETS

        if self.extra_models and not PRESETS[self.runtime].multi_model:
            multi = ", ".join(n for n, p in PRESETS.items() if p.multi_model)
            instead = "serve more models as lora_adapters" if self.runtime == "vllm" else "add a model server (and pool) per model"
            raise ValueError(
                f"extra_models: runtime {self.runtime!r} serves one model per server; {instead} "
                f"(runtimes that load several models: {multi})"
            )
        names = [self.model, *self.extra_models]
        for m in sorted({m for m in names if names.count(m) > 1}):
            raise ValueError(f"extra_models: {m!r} is listed twice (the server's model is {self.model!r})")
        return self

    @property
    def lora_enabled(self) -> bool:
        from ..catalog.runtimes import PRESETS

        if self.enable_lora is None:
            return PRESETS[self.runtime].supports_lora
        return self.enable_lora

    @property
    def served_names(self) -> set[str]:
        return {self.model, *self.extra_models} | {a.id for a in self.lora_adapters}


class PickerScorerConfig(Strict):
    type: str
    weight: float = Field(1.0, gt=0)
    parameters: dict = {}


class PickerSettings(Strict):
    """Per-pool endpoint picker settings (rendered into its ConfigMap)."""

    replicas: int = Field(1, ge=1)
    """More than one enables Lease-based leader election (active-passive): the standbys keep
    their datastore warm and one takes over when the leader stops renewing its Lease."""
    lease_duration_seconds: int = Field(10, ge=2, le=60)
    """With replicas > 1: how long a dead or hung leader keeps the Lease (failover time)."""
    message_timeout_ms: int = Field(1000, ge=10, le=10000)
    """How long the gateway waits for each picker answer before treating the picker as failed
    (FailOpen: the request goes on without it; FailClose: 503). Read by gateways this project
    configures (igw up's Envoy); GKE's managed gateway does not expose the EPP callout timeout."""
    overload_threshold: float | None = Field(4.0, gt=1)
    """Pool saturation (mean over pods of max(waiting/5, KV use/0.8)) at which Standard requests
    get 503 instead of queueing; Sheddable ones already get 429 at 1. None: never refused."""
    critical_overload_threshold: float | None = Field(8.0, gt=1)
    """The same for Critical requests (refused last). None: never refused."""

    @model_validator(mode="after")
    def _critical_refused_last(self):
        o, c = self.overload_threshold, self.critical_overload_threshold
        if o is not None and c is not None and c < o:
            raise ValueError(f"critical_overload_threshold ({c:g}) must be at least overload_threshold ({o:g})")
        return self
    scorers: list[PickerScorerConfig] | None = None
    """Default: the benchmarked weights (queue 2, kv-cache 1, prefix 5, in-flight load 2) plus
    LoRA affinity when the pool serves adapters. The reference picker's are queue 2, kv-cache 2,
    prefix 3."""
    picker: Literal["max-score-picker", "weighted-random-picker"] = "max-score-picker"
    reject_unknown_models: bool = False
    """404 for a model the pool does not serve (else the request reaches the model server)."""
    api_keys: bool = False
    """Require `Authorization: Bearer <key>`; keys come from the secret config value `apiKeys`
    (`igw up` reads them from --api-keys-file or IGW_API_KEYS). The key's user is the identity of
    per-user rate limits; without keys it is the client address the load balancer appended to
    X-Forwarded-For. No client-supplied header ever names the user."""
    tls_secret: Name | None = None
    """A `kubernetes.io/tls` Secret in the pool's namespace whose tls.crt/tls.key the picker serves
    on its ext_proc port (a renewed Secret is picked up without a restart). Default: a
    self-signed certificate made at startup, as the reference picker does (gateways do not verify
    the picker's certificate)."""
    cpu: str = "2"
    memory: str = "2Gi"
    flow_control: FlowControlSettings | None = None
    """Requests wait in the picker instead of being refused at saturation or while no replica is
    ready. Default: on for a pool whose model server scales to zero, else off."""


class BackendPolicyConfig(Strict):
    timeout_seconds: int = Field(300, ge=1, le=86400)
    logging_sample_rate: float = Field(1.0, ge=0, le=1)
    health_check_interval_seconds: int = Field(2, ge=1)
    health_check_timeout_seconds: int = Field(2, ge=1)


class InferencePoolConfig(Strict):
    name: Name
    model_server: Name | None = None
    """The model server whose pods this pool selects. None only for the pool of an external model
    (``models[].external``): its pods are the egress proxy the stack renders for the provider."""
    failure_mode: Literal["FailOpen", "FailClose"] = "FailOpen"
    """What the gateway does when the picker is unreachable: FailOpen picks a pod itself. An
    external model's pool defaults to (and must use) FailClose."""
    protocol: Literal["http", "grpc"] | None = None
    """The model server API this pool serves: `grpc` sends HTTP/2 (appProtocol
    kubernetes.io/h2c) to the runtime's gRPC port. An InferencePool has one protocol, so a
    runtime with a REST and a gRPC API (Caikit, KServe v2) gets one pool per API. Default: the
    runtime's own protocol (gRPC for tgis, else http)."""
    picker: PickerSettings = PickerSettings()
    backend_policy: BackendPolicyConfig = BackendPolicyConfig()

    @model_validator(mode="before")
    @classmethod
    def _external_pools_fail_closed(cls, data):
        if isinstance(data, dict) and data.get("model_server") is None and "failure_mode" not in data:
            data = {**data, "failure_mode": "FailClose"}
        return data


class TargetModelConfig(Strict):
    model: str = Field(min_length=1)
    """A model the pool serves: its base model or one of its LoRA adapter ids."""
    weight: int = Field(100, ge=0, le=100)
    """Traffic percentage; 0 keeps the model reachable only through the served-model route."""
    name: Name | None = None
    """Served-model name (seed 002 'current' / 'challenger'); default: derived from the model."""


class RateLimitConfig(Strict):
    """Seed 004 rate limits: calls per renewal period per user or for the whole endpoint."""

    calls: int = Field(ge=1)
    key: Literal["user", "endpoint"] = "user"
    renewal_period: Literal["minute"] = "minute"


class ServedModelConfig(Strict):
    """A client-facing model name: what requests put in `model`."""

    name: str = Field(min_length=1, max_length=256)
    pool: Name
    criticality: Criticality = "Standard"
    targets: list[TargetModelConfig] = []
    """Weighted traffic split (percentages summing to 100). Empty: the name itself is served."""
    rate_limits: list[RateLimitConfig] = []
    external: ExternalModelConfig | None = None
    """A model hosted by a provider (seed 004), served through ``pool`` (a pool without
    model_server: the stack's egress proxy for it). See components/config/external.py."""
    tags: dict[str, str] = {}
    """Seed 004's endpoint tags (key -> value): reported by `igw status` and the stack outputs and
    kept on the endpoint's InferenceObjective."""

    @field_validator("tags")
    @classmethod
    def _tags(cls, v: dict[str, str]):
        for key, value in v.items():
            if not _TAG_KEY.match(key):
                raise ValueError(f"tag key {key!r} is invalid; use 1-128 letters, digits, spaces or _.:/=+-@")
            if len(value) > 256:
                raise ValueError(f"tag {key!r}: the value has {len(value)} characters; at most 256 are allowed")
        if len(v) > 20:
            raise ValueError(f"{len(v)} tags; at most 20 are allowed")
        return v

    @field_validator("targets")
    @classmethod
    def _weights(cls, v: list[TargetModelConfig]):
        if not v:
            return v
        total = sum(t.weight for t in v)
        if total != 100:
            raise ValueError(
                f"weights sum to {total}; they are traffic percentages and must sum to 100 "
                f"(got {', '.join(f'{t.model}={t.weight}' for t in v)})"
            )
        models = [t.model for t in v]
        dupes = sorted({m for m in models if models.count(m) > 1})
        if dupes:
            raise ValueError(f"target model {dupes[0]!r} appears twice; list each model once")
        if len(v) > 10:
            raise ValueError(f"{len(v)} targets; at most 10 are allowed")
        return v
