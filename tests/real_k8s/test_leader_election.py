"""Two pickers of one pool, as the rendered HA Deployment runs them, elect a leader through a real
coordination.k8s.io Lease: only the leader reports ready (a Service sends ext_proc streams to
ready pods only). A leader that is killed loses the Lease when it expires; one that is stopped
hands it over at once. Never are two ready at the same time."""

from __future__ import annotations

import signal
import time
from typing import Iterator

import pytest

from .bundle import flag
from .dataplane import KubePicker
from .pool_env import PoolEnv, choose_bundle, make_pool_env

DEFAULT_LEASE_DURATION_S = 15   # the picker's (and the reference picker's) defaults
DEFAULT_RETRY_PERIOD_S = 2


@pytest.fixture
def env(cluster, crds, namespace, addresses, workdir) -> Iterator[PoolEnv]:
    e = make_pool_env(cluster, namespace, addresses, workdir, choose_bundle(leader_election=True))
    try:
        yield e
    finally:
        e.close()


def lease(env: PoolEnv) -> dict:
    leases = env.admin.list("coordination.k8s.io/v1", "Lease", env.namespace)["items"]
    assert len(leases) == 1, [item["metadata"]["name"] for item in leases]
    return leases[0]


def only_leader(pickers: list[KubePicker], timeout: float) -> tuple[KubePicker, float]:
    """Wait until exactly one picker is ready, checking that two never are; (leader, seconds)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        ready = [p for p in pickers if p.proc.running() and p.serving()]
        assert len(ready) <= 1, f"two ready pickers: {[p.name for p in ready]}"
        if ready:
            return ready[0], time.monotonic() - t0
        time.sleep(0.2)
    raise AssertionError("no leader:\n" + "\n".join(f"{p.name}:\n{p.log(20)}" for p in pickers))


def test_one_leader_and_failover(env: PoolEnv) -> None:
    duration = int(flag(env.bundle.picker_args, "--ha-lease-duration") or DEFAULT_LEASE_DURATION_S)
    retry = float(flag(env.bundle.picker_args, "--ha-retry-period") or DEFAULT_RETRY_PERIOD_S)
    pod = env.add_pod("a")
    a, b = env.start_picker("picker-a"), env.start_picker("picker-b")
    leader, _ = only_leader([a, b], timeout=30)
    standby = b if leader is a else a
    standby.wait_endpoints({pod.endpoint})  # a standby discovers too: its datastore is warm
    first = lease(env)
    assert first["metadata"]["name"] == f"epp-{env.namespace}-{env.pool_name()}"
    assert first["spec"]["holderIdentity"] and first["spec"]["leaseDurationSeconds"] == duration
    time.sleep(3)  # a few renewals later: still the same single leader
    assert leader.serving() and not standby.serving()

    leader.proc.signal(signal.SIGKILL)  # no hand-over: the standby waits for the Lease to expire
    new, took = only_leader([standby], timeout=duration + 15)
    assert new is standby
    second = lease(env)
    assert second["spec"]["holderIdentity"] != first["spec"]["holderIdentity"]
    assert second["spec"]["leaseTransitions"] == first["spec"].get("leaseTransitions", 0) + 1
    # The killed leader renewed at most `retry` before it died: its Lease ran out no earlier.
    assert took > duration - retry - 1, f"took over after {took:.1f}s, before the killed leader's Lease expired"

    c = env.start_picker("picker-c")
    c.wait_endpoints({pod.endpoint})
    time.sleep(2)
    assert not c.serving()  # synced, standing by while the other leads
    standby.stop()  # SIGTERM: the Lease is handed back
    new, took = only_leader([c], timeout=duration)
    assert took < duration / 2, f"graceful hand-over took {took:.1f}s"
    assert lease(env)["spec"]["holderIdentity"] not in (first["spec"]["holderIdentity"], second["spec"]["holderIdentity"])
