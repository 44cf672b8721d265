"""Where the control-plane binaries of a local cluster come from.

kube-apiserver and kube-controller-manager are built from `k8s.io/kubernetes` at
KUBERNETES_VERSION by `.ci/build-kubernetes` into `$IGW_CACHE_DIR/bin/kubernetes-<version>/`
(IGW_CACHE_DIR defaults to ~/.cache/inference-gateway; the script reads the version from this
file, so it is pinned in one place). etcd is Debian's `etcd-server` package (`/usr/bin/etcd`).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

KUBERNETES_VERSION = "v1.36.3"
SETUP_COMMAND = ".ci/setup-kubernetes"


class MissingBinaries(RuntimeError):
    """A control-plane binary is not installed; the message names what to run."""


def cache_dir() -> Path:
    return Path(os.environ.get("IGW_CACHE_DIR") or Path.home() / ".cache" / "inference-gateway")


def kubernetes_bin_dir(version: str = KUBERNETES_VERSION) -> Path:
    return cache_dir() / "bin" / f"kubernetes-{version}"


@dataclass(frozen=True)
class Binaries:
    kube_apiserver: Path
    kube_controller_manager: Path
    etcd: Path
    version: str


def find_binaries(version: str = KUBERNETES_VERSION) -> Binaries:
    """The built binaries for `version` and etcd, or MissingBinaries listing every missing one."""
    bin_dir = kubernetes_bin_dir(version)
    apiserver, kcm = bin_dir / "kube-apiserver", bin_dir / "kube-controller-manager"
    etcd = shutil.which("etcd") or "/usr/bin/etcd"
    missing = [str(p) for p in (apiserver, kcm) if not os.access(p, os.X_OK)]
    if not os.access(etcd, os.X_OK):
        missing.append("etcd (Debian package etcd-server)")
    if missing:
        raise MissingBinaries(f"Kubernetes {version} control plane not installed (missing: {', '.join(missing)}); "
                              f"run {SETUP_COMMAND}")
    return Binaries(apiserver, kcm, Path(etcd), version)
