"""Pure builders for Model Armor templates, the floor setting and the callout IAM (no Pulumi).

Shapes follow pulumi-gcp 10.2 `modelarmor.Template` / `Floorsetting` (snake_case arguments).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config import ModelArmorTemplateConfig

CALLOUT_ROLES = (
    "roles/modelarmor.calloutUser",
    "roles/modelarmor.user",
    "roles/serviceusage.serviceUsageConsumer",
)
"""What the load balancer's service-extension agent needs to call Model Armor (Model Armor
"Service accounts" doc)."""


def callout_member(project_number: str) -> str:
    """The load balancer (service extensions) agent that calls Model Armor on every request."""
    return f"serviceAccount:service-{project_number}@gcp-sa-dep.iam.gserviceaccount.com"


def _enforcement(on: bool) -> str:
    return "ENABLED" if on else "DISABLED"


def filter_config(t: ModelArmorTemplateConfig) -> dict[str, Any]:
    """filter_config: RAI filters with confidence, PI/jailbreak, malicious URIs, SDP basic/advanced."""
    out: dict[str, Any] = {}
    if t.rai_filters:
        out["rai_settings"] = {
            "rai_filters": [{"filter_type": k, "confidence_level": v} for k, v in sorted(t.rai_filters.items())]
        }
    if t.pi_and_jailbreak is not None:
        out["pi_and_jailbreak_filter_settings"] = {"filter_enforcement": "ENABLED", "confidence_level": t.pi_and_jailbreak}
    else:
        out["pi_and_jailbreak_filter_settings"] = {"filter_enforcement": "DISABLED"}
    out["malicious_uri_filter_settings"] = {"filter_enforcement": _enforcement(t.malicious_uri)}
    if t.sdp == "basic":
        out["sdp_settings"] = {"basic_config": {"filter_enforcement": "ENABLED"}}
    elif t.sdp == "advanced":
        assert t.sdp_advanced is not None  # config validation guarantees it
        advanced = {"inspect_template": t.sdp_advanced.inspect_template}
        if t.sdp_advanced.deidentify_template:
            advanced["deidentify_template"] = t.sdp_advanced.deidentify_template
        out["sdp_settings"] = {"advanced_config": advanced}
    return out


def template_metadata(t: ModelArmorTemplateConfig) -> dict[str, Any]:
    return {
        "enforcement_type": t.enforcement,
        "log_sanitize_operations": t.log_operations,
        "log_template_operations": t.log_operations,
    }
