"""Stack config: the ONLY place stack config is read and validated.

`load_stack_config()` reads `inference-gateway:*` keys of the running Pulumi stack and returns a
frozen `StackConfig`; every problem is raised together as `ConfigError` before any resource exists.
"""

from ._base import ConfigError
from .infra import (
    ApisConfig,
    AutoscalingConfig,
    ClusterConfig,
    GpuNodePoolConfig,
    ModelArmorConfig,
    ModelArmorGuardConfig,
    ModelArmorTemplateConfig,
    NetworkConfig,
    PickerImageConfig,
    ProxyOnlySubnetConfig,
)
from .routing import GATEWAY_CLASSES, GatewayConfig, ListenerConfig, MatchConfig, ObservabilityConfig, RouteConfig
from .serving import (
    DrainConfig,
    InferencePoolConfig,
    LoraAdapterConfig,
    ModelServerConfig,
    PickerSettings,
    RateLimitConfig,
    RuntimeOverrides,
    ServedModelConfig,
    TargetModelConfig,
)
from .stack import PROJECT, SECRET_KEYS, StackConfig, config_values_from_stack_file, load_stack_config, parse_stack_config, secret_config

__all__ = [name for name in dir() if not name.startswith("_")]
