"""The stack's secret inputs (SECRET_KEYS: hfToken, apiKeys, kubeconfig, providerKeys), resolved in one place.

A Pulumi program reads them from secret config (`pulumi config set --secret`); the package's
component (components/package.py), used from other languages, receives them as arguments.
Either way every value is a Pulumi secret: encrypted in state, masked in previews.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import pulumi

from .config import SECRET_KEYS, secret_config


@dataclass(frozen=True)
class StackSecrets:
    values: Mapping[str, pulumi.Input[Any]] = field(default_factory=dict)
    """Secret key (one of SECRET_KEYS) -> its value; absent keys are unset."""

    @classmethod
    def from_config(cls) -> StackSecrets:
        """The running stack's secret config values."""
        return cls({k: v for k in SECRET_KEYS if (v := secret_config(k)) is not None})

    @classmethod
    def given(cls, values: Mapping[str, pulumi.Input[Any] | None]) -> StackSecrets:
        """Values passed in (a component's arguments), each made a secret."""
        unknown = sorted(set(values) - set(SECRET_KEYS))
        if unknown:
            raise ValueError(f"unknown secret(s) {', '.join(unknown)}; allowed: {', '.join(SECRET_KEYS)}")
        return cls({k: pulumi.Output.secret(v) for k, v in values.items() if v is not None})

    def get(self, key: str) -> pulumi.Input[Any] | None:
        if key not in SECRET_KEYS:
            raise KeyError(f"{key!r} is not a stack secret; allowed: {', '.join(SECRET_KEYS)}")
        return self.values.get(key)
