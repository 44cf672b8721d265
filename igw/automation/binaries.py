"""Where the real Pulumi engine comes from, pinned in one place.

`.ci/build-pulumi` reads the versions below and builds, from the Go module proxy:

- the Pulumi CLI at PULUMI_VERSION into `$IGW_CACHE_DIR/bin/pulumi-<version>/bin/pulumi` (the
  layout `pulumi.automation.PulumiCommand(root=...)` expects);
- the Kubernetes provider plugin into `$IGW_CACHE_DIR/bin/pulumi-kubernetes-<label>/
  pulumi-resource-kubernetes`. The proxy serves `github.com/pulumi/pulumi-kubernetes/provider/v4`
  only at the January 2026 pseudo-version PULUMI_KUBERNETES_MODULE_VERSION (v4.34.2, which the
  Python SDK in our env asks for, is refused); PULUMI_KUBERNETES_LABEL is the version we stamp
  into it: the 4.24 line that pseudo-version's `sdk/v4` requirement names, plus its date.

It also installs the Node.js consumer's packages (`npm ci`) into `$IGW_CACHE_DIR/npm/
pulumi-nodejs-<version>/`.

The engine is told to use that plugin whatever version the SDK asks for through a project
plugin entry (`plugins.providers` in the workspace's Pulumi.yaml, see workspace.py): a path
with no version matches every requested version, without touching $PATH or the plugin cache.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from igw.kube.binaries import cache_dir

PULUMI_VERSION = "v3.274.1"
PULUMI_KUBERNETES_MODULE_VERSION = "v4.0.0-20260115033456-f47bc2d6f199"
PULUMI_KUBERNETES_LABEL = "4.24.0-dev.20260115"
PULUMI_NODEJS_VERSION = "3.270.0"
"""@pulumi/pulumi for the Node.js consumer test (tests/real_engine/node_consumer, its lock file);
npm has no 3.274.x, and 3.270.0's Automation API drives the 3.274.1 CLI."""
SETUP_COMMAND = ".ci/build-pulumi"


class MissingPulumi(RuntimeError):
    """The Pulumi CLI or the Kubernetes provider plugin is not built; the message names what to run."""


def pulumi_root(version: str = PULUMI_VERSION) -> Path:
    """The folder holding `bin/pulumi` (PulumiCommand's root)."""
    return cache_dir() / "bin" / f"pulumi-{version}"


def node_modules_dir(version: str = PULUMI_NODEJS_VERSION) -> Path:
    """node_modules of the Node.js consumer (`npm ci` of its lock file, by .ci/build-pulumi)."""
    return cache_dir() / "npm" / f"pulumi-nodejs-{version}" / "node_modules"


def kubernetes_plugin_dir(label: str = PULUMI_KUBERNETES_LABEL) -> Path:
    """The folder holding `pulumi-resource-kubernetes` (a project plugin path)."""
    return cache_dir() / "bin" / f"pulumi-kubernetes-{label}"


@dataclass(frozen=True)
class PulumiBinaries:
    root: Path
    """PulumiCommand root: the CLI is root/bin/pulumi."""
    kubernetes_plugin_dir: Path
    version: str
    kubernetes_label: str

    @property
    def cli(self) -> Path:
        return self.root / "bin" / "pulumi"


def find_pulumi() -> PulumiBinaries:
    """The built CLI and Kubernetes plugin, or MissingPulumi listing what is missing."""
    found = PulumiBinaries(pulumi_root(), kubernetes_plugin_dir(), PULUMI_VERSION, PULUMI_KUBERNETES_LABEL)
    missing = [str(p) for p in (found.cli, found.kubernetes_plugin_dir / "pulumi-resource-kubernetes") if not os.access(p, os.X_OK)]
    if missing:
        raise MissingPulumi(f"Pulumi {PULUMI_VERSION} / pulumi-kubernetes {PULUMI_KUBERNETES_LABEL} not built "
                            f"(missing: {', '.join(missing)}); run {SETUP_COMMAND}")
    return found
