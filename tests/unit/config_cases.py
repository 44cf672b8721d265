"""Shared stack-config fixtures for the config tests: a minimal valid stack and the error helper."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from components.config import ConfigError
from components.stack_config import parse_stack_config

# The smallest stack that serves something: one H100 pool, one vLLM server with an adapter, one
# InferencePool and one served model. Tests add or replace top-level keys.
SERVING_BASE: dict[str, Any] = {
    "project": "igw-test-project",
    "node_pools": [{"machine_type": "a3-highgpu-1g", "autoscaling": {"total_max_nodes": 2}}],
    "model_servers": [
        {
            "name": "vllm-llama3-8b-instruct",
            "model": "meta-llama/Llama-3.1-8B-Instruct",
            "lora_adapters": [{"id": "food-review", "source": "Kawon/llama3.1-food-finetune_v14_r8"}],
        }
    ],
    "pools": [{"name": "llama", "model_server": "vllm-llama3-8b-instruct"}],
    "models": [{"name": "food-review", "pool": "llama"}],
}


def config_problems(base: dict[str, Any], **changes: Any) -> list[str]:
    """The ConfigError lines for `base` with some top-level keys replaced (it must be invalid)."""
    values = copy.deepcopy(base)
    values.update(changes)
    with pytest.raises(ConfigError) as err:
        parse_stack_config(values)
    return err.value.problems
