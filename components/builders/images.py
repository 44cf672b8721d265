"""Image references (pure): which pull policy a reference gets.

A digest (``repo@sha256:...``) names exact bytes, so the kubelet's cached copy is always right:
``IfNotPresent``. A tag can move, so a tag is resolved at every container start (``Always``):
the kubelet asks the registry which digest the tag names and reuses its cached layers when the
digest matches, so every node runs what the tag names now and not whatever it cached earlier
(seed 001's ``Always``). The price is one manifest request per start and a dependency on the
registry being reachable when a pod (re)starts; pin a digest (``runtime_overrides.image``,
``picker_image.image``) to drop both. checkov's CKV_K8S_15 asks for exactly this rule.
"""

from __future__ import annotations

from typing import Any

ALWAYS, IF_NOT_PRESENT = "Always", "IfNotPresent"


def has_digest(image: str) -> bool:
    return "@" in image


def pull_policy(image: Any) -> Any:
    """``IfNotPresent`` for a digest reference, ``Always`` for a tag. ``image`` may be a value
    not known yet (anything with ``apply``, such as the picker image the stack builds and
    references by digest); the policy then follows it."""
    if isinstance(image, str):
        return IF_NOT_PRESENT if has_digest(image) else ALWAYS
    if hasattr(image, "apply"):
        return image.apply(pull_policy)
    raise TypeError(f"image reference must be a string, got {type(image).__name__}")
