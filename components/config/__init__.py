"""Stack config: the ONLY place stack config is read and validated.

The schema (pydantic, unknown keys rejected) and its cross-field rules. Read and validate a stack
through `components.stack_config` (`load_stack_config()` / `parse_stack_config(values)`), which
adds the limits only a render can tell; every problem is raised together as `ConfigError` before
any resource exists. This package imports only `components.catalog`.
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
from .served_models import ServedTarget, served_targets
from .stack import (
    PROJECT,
    SECRET_KEYS,
    StackConfig,
    config_values_from_stack_file,
    read_stack_config_values,
    secret_config,
    validate_stack_config,
)

__all__ = [name for name in dir() if not name.startswith("_")]
