"""igw.kube itself: the identities it mints are what the API server authenticates, a kubeconfig it
writes works for a client that reads kubeconfigs (the picker's loader), compaction makes an old
resourceVersion answer 410 Gone, and a control plane that cannot start says why with its logs."""

from __future__ import annotations

import socket

import pytest

from endpoint_picker.discovery.kubeconfig import load_kubeconfig
from igw.kube import ClusterError, LocalCluster

from .dataplane import Addresses


def whoami(client) -> str:
    review = client.request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                            body={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    return review["status"]["userInfo"]["username"]


def test_identities(cluster, admin, namespace) -> None:
    assert whoami(admin) == "igw-admin"
    admin.apply({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "robot", "namespace": namespace}})
    token = cluster.service_account_token(namespace, "robot")
    with cluster.client(token) as robot:
        assert whoami(robot) == f"system:serviceaccount:{namespace}:robot"

    conn = load_kubeconfig(cluster.kubeconfig("robot", token))
    assert (conn.host, conn.port, conn.token) == (cluster.host, cluster.apiserver_port, token)


def test_watch_from_a_compacted_version_is_410_gone(cluster, admin, namespace) -> None:
    """Pods are watched from etcd in this session (conftest), so compaction is what expires them."""
    old = admin.list("v1", "Pod", namespace)["metadata"]["resourceVersion"]
    for i in range(2):  # a watch from `old` starts at old+1: compact beyond that
        admin.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"bump{i}", "namespace": namespace}})
    assert cluster.compact_etcd() >= int(old) + 2
    events = list(admin.watch("v1", "Pod", namespace, resource_version=old, timeout_s=5))
    assert [(e["type"], e["object"]["code"], e["object"]["reason"]) for e in events] == [("ERROR", 410, "Expired")]
    assert "too old" in events[0]["object"]["message"]


def test_a_control_plane_that_cannot_start_says_why(cluster, tmp_path, addresses: Addresses) -> None:
    host = addresses.take(30900)
    with socket.socket() as squatter:   # etcd's client port is taken
        squatter.bind((host, 30900))
        squatter.listen()
        c = LocalCluster(tmp_path, host=host, base_port=30900, binaries=cluster.binaries, startup_timeout_s=30)
        with pytest.raises(ClusterError) as err:
            c.start()
    message = str(err.value)
    assert "etcd exited" in message and "address already in use" in message, message
    assert not c.running()
