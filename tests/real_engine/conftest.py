"""The real-engine tier: the Pulumi CLI and the Kubernetes provider plugin built from the Go module
proxy (`.ci/build-pulumi`, igw.automation.binaries) drive the unchanged program through the
Automation API against a real kube-apiserver (igw.kube.LocalCluster on 127.0.90.x, ports
54000-54003; the same harness as tests/real_k8s).

The cluster stands in for a team's GKE cluster at 1.33: it has the CRDs GKE installs (Gateway
API, the networking.gke.io policies, Managed Prometheus' PodMonitoring) and not the ones such a
cluster lacks (InferencePool below 1.34.0-gke.1626000, the llm-d.ai kinds), which the byo stack
installs itself. There are no nodes, so no pod ever runs (see igw.automation.workspace,
skip_await).

Without the binaries the tier skips naming the setup command; with CI=true it fails instead.
"""

from __future__ import annotations

import os
from typing import Iterator

import pytest

from igw.automation import MissingPulumi, PulumiBinaries, find_pulumi
from igw.kube import ClusterError, KubeClient, LocalCluster, MissingBinaries, find_binaries, find_free_host
from tests.real_k8s.manifests import install_crds, upstream_crds

HOSTS = [f"127.0.90.{i}" for i in range(1, 20)]
BASE_PORT = 54000
GKE_PROVIDES = ("gateway.networking.k8s.io", "networking.gke.io", "monitoring.googleapis.com")
"""API groups whose CRDs a GKE cluster (Gateway API on, Managed Prometheus) already has."""


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1")


def missing_part(message: str) -> None:
    """Skip naming the setup command; fail instead under CI=true."""
    if _in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def pulumi_binaries() -> PulumiBinaries:
    try:
        return find_pulumi()
    except MissingPulumi as e:
        missing_part(str(e))
        raise


@pytest.fixture(scope="session")
def engine_cluster(tmp_path_factory, pulumi_binaries, pytestconfig) -> Iterator[LocalCluster]:
    try:
        binaries = find_binaries()
    except MissingBinaries as e:
        missing_part(str(e))
        raise
    host = find_free_host(HOSTS, range(BASE_PORT, BASE_PORT + 4))
    cluster = LocalCluster(tmp_path_factory.mktemp("engine-kube"), host=host, base_port=BASE_PORT, binaries=binaries)
    try:
        cluster.start()
    except ClusterError as e:
        pytest.fail(str(e), pytrace=False)
    reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"\nreal_engine: pulumi {pulumi_binaries.version}, pulumi-kubernetes "
                            f"{pulumi_binaries.kubernetes_label}, Kubernetes {binaries.version} at {cluster.server}")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def gke_standin(engine_cluster: LocalCluster) -> KubeClient:
    """The admin client of a cluster with the CRDs GKE provides installed and Established."""
    admin = engine_cluster.admin()
    install_crds(admin, [c for c in upstream_crds() if c["spec"]["group"] in GKE_PROVIDES], field_manager="gke")
    return admin
