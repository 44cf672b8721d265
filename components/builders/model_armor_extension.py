"""Model Armor on a gateway (pure): the GCPTrafficExtension and its ``model_armor_settings``.

Shape from GKE "Customize GKE Inference Gateway configuration -> Configure AI security": one
extension chain matching every request (``request.path.startsWith("/")``), one extension calling
``modelarmor.<region>.rep.googleapis.com`` on all six events, ``metadata.model_armor_settings`` a
JSON-array *string* of ``{model, model_response_template_id, user_prompt_template_id}`` (full
template names ``projects/P/locations/L/templates/T``). ``model: default`` applies to any model
without its own entry.

Limits (Service Extensions "Configure an extension to call a Google service"): streamed responses
are not sanitized, and only some OpenAI-style operations (chat completions, completions, ...) are
screened; other requests pass through unscreened.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from ..config import ModelArmorConfig

GATEWAY_GROUP = "gateway.networking.k8s.io"
ALL_EVENTS = ["RequestHeaders", "RequestBody", "RequestTrailers", "ResponseHeaders", "ResponseBody", "ResponseTrailers"]
MATCH_ALL = 'request.path.startsWith("/")'
METADATA_VALUE_MAX = 1023
"""GCPTrafficExtension CRD: each metadata value is at most 1023 characters."""


def model_armor_settings(model_armor: ModelArmorConfig, template_names: Mapping[str, str]) -> str:
    """The JSON-array string; `template_names` maps template id -> full resource name."""
    entries = [
        {
            "model": g.model,
            "model_response_template_id": template_names[g.response_template],
            "user_prompt_template_id": template_names[g.prompt_template],
        }
        for g in model_armor.guards
    ]
    return json.dumps(entries, separators=(",", ":"))


def traffic_extension(gateway: str, namespace: str, region: str, model_armor: ModelArmorConfig, settings: Any, labels: dict[str, str] | None = None) -> dict[str, Any]:
    """`settings` is the JSON string (or a Pulumi Output of it)."""
    return {
        "apiVersion": "networking.gke.io/v1",
        "kind": "GCPTrafficExtension",
        "metadata": {"name": f"{gateway}-model-armor", "namespace": namespace, "labels": dict(labels or {})},
        "spec": {
            "targetRefs": [{"group": GATEWAY_GROUP, "kind": "Gateway", "name": gateway}],
            "extensionChains": [
                {
                    "name": "model-armor",
                    "matchCondition": {"celExpressions": [{"celMatcher": MATCH_ALL}]},
                    "extensions": [
                        {
                            "name": "model-armor",
                            "googleAPIServiceName": f"modelarmor.{region}.rep.googleapis.com",
                            "supportedEvents": list(ALL_EVENTS),
                            "timeout": f"{model_armor.timeout_ms}ms",
                            "failOpen": model_armor.fail_open,
                            "metadata": {"model_armor_settings": settings},
                        }
                    ],
                }
            ],
        },
    }
