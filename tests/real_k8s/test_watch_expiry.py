"""The picker's watches across a broken connection to the real API server (a cuttable TCP proxy
between them; the API server is untouched). While the picker is cut off, a pod is added and one
deleted. Without compaction the picker resumes its watches from the last resourceVersion and
replays what it missed; after etcd is compacted past that version the server answers the resumed
pod watch with 410 Gone, and the picker relists and recovers the same way.

The session's API server reads pod watches from etcd (conftest: --watch-cache-sizes=pods#0), so
a compacted resourceVersion is refused exactly as it is when a client returns after the watch
cache's window."""

from __future__ import annotations

from typing import Iterator

import pytest

from igw.kube import until, write_kubeconfig

from .dataplane import PROXY_PORT
from .pool_env import PoolEnv, choose_bundle, make_pool_env
from .proxy import CuttableProxy

RELIST = "(410); relisting"


@pytest.fixture
def cut_off(cluster, crds, namespace, addresses, workdir) -> Iterator[tuple[PoolEnv, CuttableProxy]]:
    env = make_pool_env(cluster, namespace, addresses, workdir, choose_bundle())
    # On the API server's own address (its certificate names it), another port.
    proxy = CuttableProxy(cluster.host, PROXY_PORT, cluster.host, cluster.apiserver_port)
    kubeconfig = write_kubeconfig(workdir / "via-proxy.yaml", f"https://{cluster.host}:{PROXY_PORT}", cluster.ca_file,
                                  user="picker", token_file=workdir / "token")
    try:
        picker = env.start_picker(kubeconfig=kubeconfig)
        until(picker.serving, timeout=30, what=f"picker ready\n{picker.log()}")
        env.start_gateway(picker)
        yield env, proxy
    finally:
        env.close()
        proxy.close()


def change_pods_while_cut(env: PoolEnv, proxy: CuttableProxy, gone: str, new: str) -> None:
    picker = env.pickers[0]
    proxy.cut()
    env.add_pod(new)
    env.pods[gone].delete()
    until(lambda: "resuming from resourceVersion" in picker.log(), timeout=10,
          what=f"the picker noticed the cut\n{picker.log()}")


def served_by(env: PoolEnv) -> set[str]:
    return {env.gateway.complete(env.replica.model, prompt=f"p{i}").headers.get("x-inference-pod") for i in range(4)}


def test_a_resumed_watch_replays_what_happened_while_cut_off(cut_off) -> None:
    env, proxy = cut_off
    picker = env.pickers[0]
    env.add_pod("a")
    picker.wait_endpoints({env.pods["a"].endpoint})

    change_pods_while_cut(env, proxy, gone="a", new="b")
    assert picker.endpoints() == {env.pods["a"].endpoint}  # nothing seen yet
    proxy.restore()
    picker.wait_endpoints({env.pods["b"].endpoint})
    assert served_by(env) == {"b"}
    assert "relisting" not in picker.log(200)


def test_a_watch_from_a_compacted_version_gets_410_and_relists(cut_off, cluster) -> None:
    env, proxy = cut_off
    picker = env.pickers[0]
    env.add_pod("a")
    picker.wait_endpoints({env.pods["a"].endpoint})

    change_pods_while_cut(env, proxy, gone="a", new="b")
    cluster.compact_etcd()
    proxy.restore()
    picker.wait_endpoints({env.pods["b"].endpoint})
    assert served_by(env) == {"b"}
    relists = [line for line in picker.log(200).splitlines() if RELIST in line]
    assert relists and all("watch pods from resourceVersion" in line for line in relists), picker.log(200)
    assert "too old" in relists[0], relists[0]
