"""Let policies read the previewed stack's config under the engine.

The engine sends the stack's config to the analyzer (`ConfigureStack`: stack, tags, config), but
pulumi-policy 1.21's Python server keeps only the tags. `remember_stack_config()` wraps that call
so the config also lands in `pulumi.runtime` config, where `pulumi.Config("inference-gateway")`
finds `environment` and `model_servers` (what the production-only policies and the drain check
read when no stack tag or policy config says otherwise). Secret config values arrive encrypted
or not at all; nothing here needs them.
"""

from __future__ import annotations

from typing import Any


def remember_stack_config() -> bool:
    """Install the wrapper (idempotent). Returns False if pulumi-policy's internals moved."""
    try:
        import pulumi.runtime
        from pulumi_policy import policy as _policy
    except Exception:  # pragma: no cover
        return False
    servicer = getattr(_policy, "_PolicyAnalyzerServicer", None)
    original = getattr(servicer, "ConfigureStack", None)
    if servicer is None or original is None:
        return False
    if getattr(original, "_igw_wrapped", False):
        return True

    def configure_stack(self: Any, request: Any, context: Any) -> Any:
        secret_keys = set(getattr(request, "config_secret_keys", []) or [])
        for key, value in dict(getattr(request, "config", {}) or {}).items():
            if key not in secret_keys:
                pulumi.runtime.set_config(key, value)
        return original(self, request, context)

    configure_stack._igw_wrapped = True  # type: ignore[attr-defined]
    servicer.ConfigureStack = configure_stack
    return True
