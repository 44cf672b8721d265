"""The real Kubernetes tier: one control plane per test session (etcd from Debian, kube-apiserver
and kube-controller-manager built from k8s.io/kubernetes at igw.kube.KUBERNETES_VERSION), on
127.0.30.x with ports 30000-30003.

Without the binaries the tier skips, naming the setup command; with CI=true it fails instead.
A failing test here gets the control plane's log tails in its report.

The API server serves pods without its watch cache (`--watch-cache-sizes=pods#0`): pod watches
then read etcd directly, so compacting etcd makes an old resourceVersion answer 410 Gone exactly
as it does when a client comes back after the cache's window (test_watch_expiry).
"""

from __future__ import annotations

import itertools
import os
import re
from pathlib import Path
from typing import Iterator

import pytest

from igw.kube import ClusterError, KubeClient, LocalCluster, MissingBinaries, find_binaries, find_free_host, until
from igw.stackfile import available_stacks

from .dataplane import CLUSTER_BASE_PORT, CLUSTER_HOSTS, Addresses
from .manifests import install_crds, stack_manifests, upstream_crds

POD_WATCH_FROM_ETCD = ["--watch-cache-sizes=pods#0"]
_started: list[LocalCluster] = []
_namespaces = itertools.count(1)


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1")


@pytest.fixture(scope="session")
def cluster(tmp_path_factory, pytestconfig) -> Iterator[LocalCluster]:
    try:
        binaries = find_binaries()
    except MissingBinaries as e:
        if _in_ci():
            pytest.fail(str(e), pytrace=False)
        pytest.skip(str(e))
    host = find_free_host(CLUSTER_HOSTS, range(CLUSTER_BASE_PORT, CLUSTER_BASE_PORT + 4))
    c = LocalCluster(tmp_path_factory.mktemp("kube"), host=host, base_port=CLUSTER_BASE_PORT, binaries=binaries,
                     apiserver_args=POD_WATCH_FROM_ETCD, startup_timeout_s=120)
    try:
        c.start()
    except ClusterError as e:
        pytest.fail(str(e), pytrace=False)
    _started.append(c)
    reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    capture = pytestconfig.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        steps = ", ".join(f"{k} {v:.1f} s" for k, v in c.startup_seconds.items())
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"\nreal_k8s: Kubernetes {binaries.version} at {c.server} ready ({steps})")
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="session")
def admin(cluster: LocalCluster) -> KubeClient:
    return cluster.admin()


@pytest.fixture(scope="session")
def crds(admin: KubeClient) -> dict[str, dict]:
    """Every CRD installed and Established: the stacks' own where they render one, else the
    upstream one (what GKE provides). Returns kind -> the CRD as the server stores it."""
    ours = {o["metadata"]["name"]: o for s in available_stacks() for o in stack_manifests(s)
            if o["kind"] == "CustomResourceDefinition"}
    chosen = {c["metadata"]["name"]: c for c in upstream_crds()} | ours
    install_crds(admin, chosen.values(), field_manager="real-k8s-tests")
    return {c["spec"]["names"]["kind"]: admin.get("apiextensions.k8s.io/v1", "CustomResourceDefinition",
                                                  c["metadata"]["name"]) for c in chosen.values()}


@pytest.fixture(scope="session")
def addresses() -> Addresses:
    return Addresses()


@pytest.fixture
def namespace(admin: KubeClient, request) -> Iterator[str]:
    """A fresh namespace per test (deleted afterwards; the namespace controller empties it)."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"t{next(_namespaces)}-{slug}"
    admin.ensure_namespace(name)
    until(lambda: admin.get("v1", "ServiceAccount", "default", name), timeout=30,
          what=f"ServiceAccount default in namespace {name}")
    yield name
    admin.delete("v1", "Namespace", name)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed and _started:
        report.sections.append(("kubernetes control plane (log tails)", _started[-1].logs(30)))
