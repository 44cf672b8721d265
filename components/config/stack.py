"""StackConfig: the whole stack, its validation (schema, then the cross-field rules of
stack_rules.py), and the one function that reads it."""

from __future__ import annotations

import json
from typing import Any, Literal, Mapping

import pydantic
from pydantic import Field, model_validator

from ._base import ConfigError, Strict, describe_validation_error
from .autoscaling import KedaSettings
from .external import PROVIDER_KEYS
from .infra import (
    ApisConfig,
    ClusterConfig,
    GpuNodePoolConfig,
    ModelArmorConfig,
    NetworkConfig,
    PickerImageConfig,
    ProxyOnlySubnetConfig,
)
from .routing import GatewayConfig, ObservabilityConfig
from .serving import InferencePoolConfig, ModelServerConfig, ServedModelConfig
from .stack_rules import stack_rules

PROJECT = "inference-gateway"
"""Pulumi project name: the config namespace (`inference-gateway:<key>`)."""

SECRET_KEYS = ("hfToken", "apiKeys", "kubeconfig", PROVIDER_KEYS)
"""Secret config values (`pulumi config set --secret`), read as Pulumi secrets, never plaintext.
`kubeconfig`: an existing cluster's kubeconfig contents (cluster.existing without a path).
`providerKeys`: external models' provider keys by scope and key (components/config/external.py)."""


class StackConfig(Strict):
    """Everything a stack file says, validated before any resource exists."""

    project: str = Field(pattern=r"^[a-z][-a-z0-9]{4,28}[a-z0-9]$")
    region: str = "us-central1"
    zones: list[str] = ["us-central1-a", "us-central1-c"]
    environment: Literal["development", "production"] = "development"
    """production: deletion protection on, Model Armor expected on external gateways."""
    name_prefix: str = "igw"
    namespace: str
    """The Kubernetes namespace of every object the stack creates. Default: ``name_prefix``.
    Never ``default`` unless written out, and never in production."""
    create_namespace: bool = True
    """Create the namespace (with Pod Security admission labels); false adopts an existing one."""
    labels: dict[str, str] = {}
    apis: ApisConfig = ApisConfig()
    network: NetworkConfig = NetworkConfig()
    cluster: ClusterConfig = ClusterConfig()
    node_pools: list[GpuNodePoolConfig] = []
    picker_image: PickerImageConfig = PickerImageConfig()
    model_servers: list[ModelServerConfig] = []
    pools: list[InferencePoolConfig] = []
    models: list[ServedModelConfig] = []
    gateways: list[GatewayConfig] = []
    model_armor: ModelArmorConfig | None = None
    observability: ObservabilityConfig = ObservabilityConfig()
    keda: KedaSettings = KedaSettings()
    """The cluster's KEDA, which runs model-server autoscaling (components/config/autoscaling.py)."""

    @model_validator(mode="before")
    @classmethod
    def _namespace_defaults_to_name_prefix(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("namespace") is None:
            data = {**data, "namespace": data.get("name_prefix", "igw")}
        return data

    # -- derived values (one source per fact) --------------------------------------------------
    @property
    def cluster_name(self) -> str:
        return self.cluster.name or f"{self.name_prefix}-gke"

    @property
    def deletion_protection(self) -> bool:
        if self.cluster.deletion_protection is not None:
            return self.cluster.deletion_protection
        return self.environment == "production"

    @property
    def proxy_only_subnets(self) -> list[ProxyOnlySubnetConfig]:
        if self.network.proxy_only_subnets is not None:
            return self.network.proxy_only_subnets
        return [ProxyOnlySubnetConfig(region=self.region)]

    @property
    def gateway_regions(self) -> set[str]:
        """Regional gateways live in the cluster's region."""
        return {self.region} if self.gateways else set()

    def node_pool_name(self, pool: GpuNodePoolConfig) -> str:
        from ..catalog.machines import pool_name

        return pool.name or pool_name(pool.machine, pool.provisioning)

    def node_pool_for(self, server: ModelServerConfig) -> GpuNodePoolConfig | None:
        if server.node_pool is None:
            return self.node_pools[0] if self.node_pools else None
        return next((p for p in self.node_pools if self.node_pool_name(p) == server.node_pool), None)

    def model_server(self, name: str) -> ModelServerConfig:
        return next(s for s in self.model_servers if s.name == name)

    def pool(self, name: str) -> InferencePoolConfig:
        return next(p for p in self.pools if p.name == name)

    def models_of_pool(self, pool: str) -> list[ServedModelConfig]:
        return [m for m in self.models if m.pool == pool]


def validate_stack_config(values: Mapping[str, Any]) -> StackConfig:
    """Validate a mapping of config keys (without the `inference-gateway:` prefix): the schema and
    every cross-field rule. `components.stack_config.parse_stack_config` adds the render limits."""
    try:
        cfg = StackConfig.model_validate(dict(values))
    except pydantic.ValidationError as err:
        raise ConfigError(describe_validation_error(StackConfig, err)) from None
    problems = stack_rules(cfg)
    if problems:
        raise ConfigError(problems)
    return cfg


def config_values_from_stack_file(document: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a Pulumi.<stack>.yaml `config:` map into (ours, everything as Pulumi keys).

    `gcp:project` / `gcp:region` fill `project` / `region` when ours are not set, like a Pulumi
    user would expect. Returns our values (secrets excluded) and the raw Pulumi key map.
    """
    raw = dict((document or {}).get("config") or {})
    ours: dict[str, Any] = {}
    for key, value in raw.items():
        ns, _, name = key.partition(":")
        if ns == PROJECT and name not in SECRET_KEYS:
            ours[name] = value
    if "project" not in ours and "gcp:project" in raw:
        ours["project"] = raw["gcp:project"]
    if "region" not in ours and "gcp:region" in raw:
        ours["region"] = raw["gcp:region"]
    return ours, raw


def read_stack_config_values() -> dict[str, Any]:
    """Our keys of the running stack's Pulumi config (unknown keys are an error). The only place
    config is read; `components.stack_config.load_stack_config` validates what it returns."""
    import pulumi

    ours = pulumi.Config(PROJECT)
    gcp = pulumi.Config("gcp")
    values: dict[str, Any] = {}
    for name in StackConfig.model_fields:
        raw = ours.get(name)
        if raw is not None:
            # Structured values reach the program as JSON; plain strings stay as written.
            values[name] = json.loads(raw) if raw[:1] in ("{", "[") else raw
    values.setdefault("project", gcp.get("project"))
    if gcp.get("region") and "region" not in values:
        values["region"] = gcp.get("region")
    if values.get("project") is None:
        values.pop("project")
    unknown = _unknown_keys()
    if unknown:
        allowed = ", ".join([*StackConfig.model_fields, *SECRET_KEYS])
        raise ConfigError([f"{k}: unknown config key; allowed: {allowed}" for k in unknown])
    return values


def _unknown_keys() -> list[str]:
    import pulumi.runtime.config as rc

    known = set(StackConfig.model_fields) | set(SECRET_KEYS)
    out = []
    for key in rc.CONFIG.get():
        ns, _, name = key.partition(":")
        if ns == PROJECT and name not in known:
            out.append(name)
    return sorted(out)


def secret_config(name: str):
    """A secret config value as a Pulumi secret Output, or None."""
    import pulumi

    assert name in SECRET_KEYS, name
    return pulumi.Config(PROJECT).get_secret(name)



