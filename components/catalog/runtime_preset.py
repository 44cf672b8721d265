"""The runtime preset types: ``RuntimePreset`` (one row of ``runtimes.PRESETS``), ``Route`` (an
API path a runtime serves), ``ServerSpec`` (what a preset reads of a model server), and the two
helpers every caller of a preset needs: ``for_protocol`` and ``served_models``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Protocol as TypingProtocol


class ServerSpec(TypingProtocol):
    """What the args builders and ``resolve_preset`` read of a model server (the stack config's
    ``ModelServerConfig`` has these fields); the catalog imports nothing from the config."""

    name: str
    model: str
    runtime: str
    tensor_parallel_size: int
    max_loras: int
    max_cpu_loras: int
    max_lora_rank: int | None
    extra_args: Any
    runtime_overrides: Any
    extra_models: Any

    @property
    def lora_enabled(self) -> bool: ...

Protocol = Literal["http", "grpc"]
Signal = Literal["queue", "kv", "lora", "prefix"]
MODELS_DIR = "/mnt/models"


MODEL_PLACEHOLDER = "{model}"


@dataclass(frozen=True)
class Route:
    """A client API path a runtime serves. ``match`` is the Gateway API path match type: Exact, or
    PathPrefix (path-segment prefix: ``/info`` covers ``/info`` and ``/info/x``, not ``/infox``).
    No regular expressions: GKE's gateway classes support Exact and PathPrefix path matches.

    ``{model}`` in ``path`` stands for each client-facing model name of the pool (KServe v2
    names the model in the path: ``/v2/models/{model}/infer``), so only served models are
    addressable."""

    path: str
    match: Literal["Exact", "PathPrefix"] = "Exact"
    protocol: Protocol = "http"
    """grpc routes are HTTP/2 paths ``/<package.Service>/<Method>``."""

    def covers(self, path: str) -> bool:
        """Whether a gateway match for this route lets ``path`` through."""
        if self.match == "Exact":
            return path == self.path
        prefix = self.path.rstrip("/")
        return prefix == "" or path == prefix or path.startswith(prefix + "/")

    def overlaps(self, other: Route) -> bool:
        """Whether some request path is let through by both."""
        return self.covers(other.path) or other.covers(self.path)


ArgsBuilder = Callable[[ServerSpec, "RuntimePreset"], list[str]]


@dataclass(frozen=True)
class RuntimePreset:
    name: str
    image: str
    command: list[str] | None
    """None: the image's entrypoint."""
    args: ArgsBuilder | list[str]
    """A function of (server config, resolved preset) or a fixed list (an override)."""
    port: int
    """HTTP port: health, readiness, metrics and (for http runtimes) inference."""
    grpc_port: int | None
    health_path: str
    readiness_path: str
    metrics_path: str | None
    protocol: Protocol
    routes: tuple[Route, ...]
    """The client API: the only paths a gateway routes to this runtime."""
    picker_signals: frozenset[str]
    """Which vLLM-style metrics exist (queue/kv/lora/prefix); empty: in-flight load only."""
    env: dict[str, str] = field(default_factory=dict)
    supports_lora: bool = False
    api: str = ""
    """The API family, for docs: openai, caikit, kserve-v2, tgis-grpc."""
    internal: tuple[Route, ...] = ()
    """Admin and internal endpoints the server also answers; no gateway route may reach them."""
    invocations_path: str | None = None
    """Where ``/served-models/<name>/invocations`` lands (``{model}``: the target model); None for
    gRPC-only runtimes, whose served models are addressed with ``x-deployed-model-id`` only."""
    multi_model: bool = False
    """Loads several models from its model store (``extra_models``): Caikit loads every model under
    /mnt/models (Caikit+TGIS: the TGIS-backed model and prompt-tuned variants of it, which the same
    TGIS serves with a prefix), OpenVINO through its config file, Triton from its repository.
    vLLM serves more models as LoRA adapters instead; TGIS serves exactly one."""

    @property
    def target_port(self) -> int:
        """The port the InferencePool sends inference traffic to."""
        if self.protocol == "grpc":
            if self.grpc_port is None:
                raise ValueError(f"runtime {self.name!r} uses grpc but has no grpc_port")
            return self.grpc_port
        return self.port

    @property
    def app_protocol(self) -> str:
        """InferencePool ``spec.appProtocol``: gRPC needs cleartext HTTP/2 to the pods."""
        return "kubernetes.io/h2c" if self.protocol == "grpc" else "http"

    @property
    def scrape_engine(self) -> str:
        return "vllm" if self.picker_signals else "none"

    def build_args(self, server: ServerSpec) -> list[str]:
        return list(self.args) if isinstance(self.args, list) else self.args(server, self)

    def routes_for(self, protocol: Protocol) -> tuple[Route, ...]:
        return tuple(r for r in self.routes if r.protocol == protocol)


def for_protocol(preset: RuntimePreset, protocol: Protocol | None) -> RuntimePreset:
    """The preset as one InferencePool sees it: an InferencePool has one appProtocol and target
    port, so a runtime with both a REST and a gRPC API (Caikit, KServe v2) is served by one pool
    per protocol (``pools[].protocol``); None keeps the runtime's own protocol."""
    if protocol is None or protocol == preset.protocol:
        return preset
    if protocol == "grpc" and preset.grpc_port is None:
        raise ValueError(f"runtime {preset.name!r} has no gRPC port")
    return dataclasses.replace(preset, protocol=protocol)


def served_models(server: ServerSpec) -> list[str]:
    """Every model the server loads from its model store: its model, then ``extra_models``."""
    return [server.model, *server.extra_models]
