"""The rendered Role is enough for the picker and no more. The picker runs with a token of its
own ServiceAccount through discovery, pod changes and (where the render enables it) leader
election and a graceful hand-over; the API server's audit log then lists every request that
ServiceAccount made. None was refused, and what the Role grants beyond what our picker used is
exactly what the reference picker needs under the same Role (`reference_picker_only`).
Requests outside the Role are refused by the server."""

from __future__ import annotations

from typing import Iterator

import pytest

from igw.kube import ApiError, until

from .pool_env import PoolEnv, choose_bundle, make_pool_env


def reference_picker_only(used: set[tuple[str, str, str]], leader_election: bool) -> set[tuple[str, str, str]]:
    """Permissions our picker never uses that the Role keeps so the upstream picker can be
    swapped in (DESIGN): controller-runtime's cached client may `get` any kind it lists and
    watches, and its leader election records an Event (create, then patch) on every change."""
    extra = {(g, r, "get") for g, r, v in used if v == "list"}
    if leader_election:
        extra |= {("", "events", "create"), ("", "events", "patch")}
    return extra


def grants(roles: list[dict]) -> set[tuple[str, str, str]]:
    return {(g, r, v) for role in roles for rule in role["rules"]
            for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}


@pytest.fixture
def env(cluster, crds, namespace, addresses, workdir) -> Iterator[PoolEnv]:
    e = make_pool_env(cluster, namespace, addresses, workdir, choose_bundle(leader_election=True))
    try:
        yield e
    finally:
        e.close()


def test_the_rendered_role_is_enough_and_no_more(env: PoolEnv, cluster) -> None:
    picker = env.start_picker()
    until(picker.serving, timeout=30, what=f"picker ready (synced and leading)\n{picker.log()}")
    env.add_pod("a")
    picker.wait_endpoints({env.pods["a"].endpoint})
    env.pods["a"].delete()
    picker.wait_endpoints(set())
    picker.stop()  # SIGTERM: a leader hands its Lease back

    user = f"system:serviceaccount:{env.namespace}:{env.bundle.service_account['metadata']['name']}"
    events = [e for e in cluster.audit_events() if e["user"]["username"] == user]
    assert events, "no audit events for the picker's ServiceAccount"
    refused = [(e["verb"], e["requestURI"], e["responseStatus"]["code"]) for e in events
               if e["responseStatus"]["code"] == 403]
    assert refused == []
    used = {(e["objectRef"].get("apiGroup", ""), e["objectRef"]["resource"], e["verb"]) for e in events}
    granted = grants(env.bundle.roles)
    assert used <= granted, used - granted
    assert granted - used == reference_picker_only(used, env.bundle.leader_election)
    if env.bundle.leader_election:
        assert {v for g, r, v in used if r == "leases"} == {"get", "create", "update"}


def test_requests_outside_the_role_are_refused(env: PoolEnv, cluster) -> None:
    sa = env.bundle.service_account["metadata"]["name"]
    with cluster.client(cluster.service_account_token(env.namespace, sa)) as client:
        client.list("v1", "Pod", env.namespace)  # granted: it works
        attempts = {
            "read Secrets": lambda: client.list("v1", "Secret", env.namespace),
            "list pods in another namespace": lambda: client.list("v1", "Pod", "default"),
            "create a pod": lambda: client.create({"apiVersion": "v1", "kind": "Pod",
                                                   "metadata": {"name": "x", "namespace": env.namespace},
                                                   "spec": {"containers": [{"name": "c", "image": "x"}]}}),
            "edit its InferencePool": lambda: client.patch("inference.networking.k8s.io/v1", "InferencePool",
                                                           env.pool_name(), {"spec": {"targetPorts": [{"number": 1}]}},
                                                           namespace=env.namespace),
            "patch pod status": lambda: client.patch("v1", "Pod", "x", {"status": {}}, namespace=env.namespace,
                                                     subresource="status"),
        }
        for what, attempt in attempts.items():
            with pytest.raises(ApiError) as err:
                attempt()
            assert (err.value.status, err.value.reason) == (403, "Forbidden"), f"{what}: {err.value}"
