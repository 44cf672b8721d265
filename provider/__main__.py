"""Entry point of the component provider (PulumiPlugin.yaml): serves `inference-gateway:index:Platform`.

The schema is inferred from the component's type annotations (`pulumi.provider.experimental`);
tests/real_engine checks it and runs the component through the real engine.
"""

from pulumi.provider.experimental import component_provider_host

from components.package import PACKAGE, Platform

VERSION = "0.1.0"
"""The package version in the schema (pyproject.toml's project version)."""

if __name__ == "__main__":
    component_provider_host([Platform], name=PACKAGE, version=VERSION)
