"""The one entry point that reads and validates a stack's config (`pulumi up`, `igw`, tests).

`components/config` checks the schema and every cross-field rule; `components/builders/
render_limits.py` checks what only a render can tell (HTTPRoute rule count, Model Armor metadata
size). Both run before any resource exists and raise `ConfigError` with every problem.
"""

from __future__ import annotations

from typing import Any, Mapping

from .builders.render_limits import render_limit_problems
from .config import ConfigError, StackConfig, read_stack_config_values, validate_stack_config


def parse_stack_config(values: Mapping[str, Any]) -> StackConfig:
    """Validate config keys given without the `inference-gateway:` prefix."""
    cfg = validate_stack_config(values)
    problems = render_limit_problems(cfg)
    if problems:
        raise ConfigError(problems)
    return cfg


def load_stack_config() -> StackConfig:
    """Read and validate the running Pulumi stack's config."""
    return parse_stack_config(read_stack_config_values())
