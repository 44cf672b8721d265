"""Seed 004's external models: a served model (an endpoint) whose model is hosted by a provider.

``models[].external: {provider, name, task, api_base?, api_key_secret}`` sits beside self-hosted
models behind the same gateways, routes, API keys, rate limits and Model Armor. The endpoint's
pool (``pools[]`` without ``model_server``) is an egress proxy in the cluster that injects the
provider key and originates TLS to the provider (components/builders/egress_proxy.py).

Seed 004's constraints, each a config error naming the YAML path:

- an endpoint with an external model has exactly one served entity: no ``targets``, and its pool
  serves no other model;
- an endpoint cannot be converted to or from an external model (``conversion_problems``, checked
  against the running or last deployed config by ``igw up`` and ``igw diff``);
- the provider key is a reference, never a value: ``{{secrets/<scope>/<key>}}`` (the Pulumi secret
  ``providerKeys.<scope>.<key>``) or a Secret Manager version
  ``projects/<project>/secrets/<secret>/versions/<version>``. A plaintext value is refused without
  being repeated in the error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Mapping

from pydantic import Field, field_validator

from ..catalog.providers import PROVIDERS, parse_api_base
from ._base import Strict

if TYPE_CHECKING:
    from .stack import StackConfig

PROVIDER_KEYS = "providerKeys"
"""The secret config value holding ``{{secrets/<scope>/<key>}}`` keys: an object by scope and key
(``pulumi config set --secret --path 'inference-gateway:providerKeys.<scope>.<key>' <key>``)."""
EGRESS_SUFFIX = "-egress"
MAX_EXTERNAL_POOL_NAME = 63 - len(EGRESS_SUFFIX)

_DATABRICKS_REF = re.compile(r"^\{\{\s*secrets/([A-Za-z0-9_.-]{1,128})/([A-Za-z0-9_.-]{1,128})\s*\}\}$")
_SECRET_MANAGER_REF = re.compile(
    r"^projects/([a-z0-9][-a-z0-9.:]{0,62}[a-z0-9]|[0-9]+)/(?:locations/([a-z0-9-]+)/)?secrets/([A-Za-z0-9_-]{1,255})"
    r"/versions/([1-9][0-9]*|latest)$"
)
REFERENCE_FORMS = (
    "{{secrets/<scope>/<key>}} (the Pulumi secret providerKeys.<scope>.<key>) or "
    "projects/<project>/secrets/<secret>/versions/<version> (Secret Manager)"
)


@dataclass(frozen=True)
class SecretRef:
    """Where the provider key lives. ``pulumi``: a leaf of the ``providerKeys`` secret config
    value, copied into a Kubernetes Secret (a Pulumi secret: encrypted in state). ``secret-manager``:
    a Secret Manager version the pod mounts through GKE's Secret Manager add-on (the value never
    passes through Pulumi)."""

    kind: Literal["pulumi", "secret-manager"]
    scope: str = ""
    key: str = ""
    resource: str = ""
    """Secret Manager: the version's full name."""
    project: str = ""
    secret: str = ""
    location: str | None = None

    @property
    def config_path(self) -> str:
        return f"{PROVIDER_KEYS}.{self.scope}.{self.key}"


def parse_secret_ref(value: str) -> SecretRef:
    """A provider-key reference, or ValueError that never repeats the value (it may be a key)."""
    m = _DATABRICKS_REF.match(value.strip())
    if m:
        return SecretRef("pulumi", scope=m.group(1), key=m.group(2))
    m = _SECRET_MANAGER_REF.match(value.strip())
    if m:
        return SecretRef("secret-manager", resource=value.strip(), project=m.group(1), location=m.group(2), secret=m.group(3))
    raise ValueError(f"is not a secret reference (the value is not shown); use {REFERENCE_FORMS}")


class ExternalModelConfig(Strict):
    """A model hosted by a provider, served through the stack's gateway (seed 004)."""

    provider: Literal["openai", "anthropic", "openai-compatible"]
    name: str = Field(min_length=1, max_length=256)
    """The provider's model name (``gpt-4o``); requests are rewritten to it."""
    task: Literal["llm/v1/chat", "llm/v1/completions", "llm/v1/embeddings"]
    api_base: str | None = None
    """The provider's API base URL (``https://api.openai.com/v1``); required for openai-compatible."""
    api_key_secret: str
    """A reference to the provider key: ``{{secrets/<scope>/<key>}}`` or a Secret Manager version."""
    replicas: int = Field(2, ge=1, le=50)
    """Egress proxy pods (each holds the key; two keep the endpoint up through a node drain)."""
    timeout_seconds: int = Field(300, ge=1, le=3600)
    """How long the proxy waits for the provider's whole answer (streams included)."""

    @field_validator("api_key_secret")
    @classmethod
    def _reference(cls, v: str) -> str:
        parse_secret_ref(v)
        return v.strip()

    @field_validator("api_base")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None:
            parse_api_base(v)
        return v

    @property
    def secret(self) -> SecretRef:
        return parse_secret_ref(self.api_key_secret)

    @property
    def base_url(self) -> str:
        base = self.api_base or PROVIDERS[self.provider].api_base
        assert base is not None, "validated: openai-compatible has api_base"
        return base


def external_pool_of(cfg: StackConfig, pool_name: str):
    """The served model whose external model a pool serves, or None."""
    return next((m for m in cfg.models if m.pool == pool_name and m.external is not None), None)


def external_rules(cfg: StackConfig) -> list[str]:
    """Cross-field rules for external models and their pools (each message starts with its path)."""
    problems: list[str] = []
    add = problems.append
    pools = {p.name: (i, p) for i, p in enumerate(cfg.pools)}
    external_by_pool: dict[str, int] = {}
    for i, m in enumerate(cfg.models):
        ext = m.external
        if ext is None:
            continue
        provider = PROVIDERS[ext.provider]
        if ext.task not in provider.tasks:
            add(f"models[{i}].external.task: {ext.task!r} is not served by provider {ext.provider!r} ({provider.docs}); "
                f"use {' or '.join(provider.tasks)}, or provider openai / openai-compatible")
        if provider.api_base is None and ext.api_base is None:
            add(f"models[{i}].external.api_base: is required for provider {ext.provider!r} (e.g. https://llm.example.com/v1)")
        if m.targets:
            add(f"models[{i}].targets: an endpoint with an external model has exactly one served entity; remove targets "
                "(traffic splits are between self-hosted models)")
        if m.pool in pools:
            j, pool = pools[m.pool]
            if pool.model_server is not None:
                add(f"models[{i}].pool: {m.pool!r} runs model server {pool.model_server!r}; an external model needs a pool "
                    f"of its own without model_server (pools[{j}]: remove model_server, or add a pool for this endpoint)")
            elif m.pool in external_by_pool:
                k = external_by_pool[m.pool]
                add(f"models[{i}].pool: {m.pool!r} already serves the external model of models[{k}]; an endpoint with an "
                    "external model has exactly one served entity: give each external model a pool of its own")
            else:
                external_by_pool[m.pool] = i
    for i, m in enumerate(cfg.models):
        k = external_by_pool.get(m.pool)
        if m.external is None and k is not None:
            add(f"models[{i}].pool: {m.pool!r} serves the external model of models[{k}]; an endpoint with an external "
                f"model has exactly one served entity: serve {m.name!r} from a pool with a model_server")
    for name, (i, pool) in pools.items():
        if pool.model_server is not None:
            continue
        if name not in external_by_pool:
            add(f"pools[{i}].model_server: is required (only the pool of an external model, models[].external, has none)")
            continue
        if pool.failure_mode == "FailOpen":
            add(f"pools[{i}].failure_mode: 'FailOpen' is not allowed for an external model's pool: without its picker the "
                "gateway would skip API keys, rate limits and the model check and spend the provider key on any request; "
                "use FailClose (the default for these pools)")
        if pool.protocol == "grpc":
            add(f"pools[{i}].protocol: 'grpc' is not supported for an external model (providers speak OpenAI's HTTP API)")
        if len(name) > MAX_EXTERNAL_POOL_NAME:
            add(f"pools[{i}].name: {name!r} has {len(name)} characters; an external model's pool names its egress proxy "
                f"'<pool>{EGRESS_SUFFIX}', so use at most {MAX_EXTERNAL_POOL_NAME}")
    return problems


def endpoint_kinds(cfg: StackConfig) -> dict[str, str]:
    """Each endpoint (served model name) -> ``external`` or ``self-hosted``."""
    return {m.name: "external" if m.external is not None else "self-hosted" for m in cfg.models}


def conversion_problems(before: Mapping[str, str], after: Mapping[str, str],
                        paths: Mapping[str, str] | None = None) -> list[str]:
    """Seed 004: an endpoint cannot be converted to or from an external model. ``before`` and
    ``after``: endpoint name -> ``external`` / ``self-hosted`` (``endpoint_kinds``) of the deployed
    (or running) config and of the new one; ``paths``: endpoint name -> its YAML path
    (``models[3]``). One message per conversion."""
    problems = []
    for name, now in after.items():
        was = before.get(name)
        if was is None or was == now:
            continue
        where = (paths or {}).get(name) or f"models[name={name}]"
        problems.append(
            f"{where}: endpoint {name!r} is {'an external' if was == 'external' else 'a self-hosted'} endpoint and "
            f"cannot be converted to {'an external' if now == 'external' else 'a self-hosted'} model; create a new "
            "endpoint under another name (and remove this one)"
        )
    return problems


def model_paths(cfg: StackConfig) -> dict[str, str]:
    return {m.name: f"models[{i}]" for i, m in enumerate(cfg.models)}
