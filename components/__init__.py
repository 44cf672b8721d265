"""The platform's ComponentResources, one per file, re-exported here.

Imports are lazy: `from components.config import ...` (config only, e.g. `igw validate`) must not
pay for importing pulumi_gcp, which dominates start-up time.
"""

from __future__ import annotations

import importlib
from typing import Any

_COMPONENTS = {
    "Apis": "apis",
    "Network": "network",
    "NodeServiceAccount": "node_service_account",
    "GkeCluster": "gke_cluster",
    "GpuNodePool": "gpu_node_pool",
    "PickerImage": "picker_image",
    "ModelArmor": "model_armor",
    "ModelServer": "model_server",
    "InferencePool": "inference_pool",
    "ModelRouting": "model_routing",
    "Serving": "serving",
    "Gateway": "gateway",
    "PoolPolicies": "pool_policies",
    "Observability": "observability",
    "InferencePlatform": "platform",
}

__all__ = list(_COMPONENTS)


def __getattr__(name: str) -> Any:
    if name in _COMPONENTS:
        return getattr(importlib.import_module(f".{_COMPONENTS[name]}", __name__), name)
    raise AttributeError(f"module 'components' has no attribute {name!r}")
