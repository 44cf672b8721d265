"""Leader election on a file (FileLeaseApi): the Lease API's answers, two electors taking turns,
a frozen leader fencing itself, and a lock held by a process that never lets go."""

from __future__ import annotations

import asyncio
import datetime as dt
import fcntl
import json
import os

from endpoint_picker.discovery.kubernetes import LeaseElector, lease_name
from endpoint_picker.discovery.lease_file import FileLeaseApi

LEASE = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "epp-default-p", "namespace": "default"},
         "spec": {"holderIdentity": "a"}}


def test_file_lease_api_answers_like_the_api_server(tmp_path):
    async def main() -> None:
        api = FileLeaseApi(tmp_path / "lease.json")
        assert (await api.call("GET", "/leases/x"))[0] == 404
        assert (await api.call("PUT", "/leases/x", LEASE))[0] == 404
        status, created = await api.call("POST", "/leases", LEASE)
        assert status == 201 and created["metadata"]["resourceVersion"] == "1"
        assert (await api.call("POST", "/leases", LEASE))[0] == 409  # AlreadyExists
        status, got = await api.call("GET", "/leases/x")
        assert status == 200 and got == created
        got["spec"]["holderIdentity"] = "b"
        status, updated = await api.call("PUT", "/leases/x", got)
        assert status == 200 and updated["metadata"]["resourceVersion"] == "2"
        # A writer that read version 1 lost the race: 409, the file keeps b.
        stale = json.loads(json.dumps(created))
        stale["spec"]["holderIdentity"] = "c"
        assert (await api.call("PUT", "/leases/x", stale))[0] == 409
        assert json.loads((tmp_path / "lease.json").read_text())["spec"]["holderIdentity"] == "b"
        assert (await api.call("DELETE", "/leases/x", got))[0] == 405

    asyncio.run(main())


def test_two_electors_on_one_file_take_turns(tmp_path):
    async def main() -> None:
        now = [dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)]
        clock = lambda: now[0]  # noqa: E731
        path = tmp_path / "lease.json"
        name = lease_name("default", "p")
        a = LeaseElector(FileLeaseApi(path), namespace="default", name=name, identity="a", clock=clock,
                         lease_duration_s=5, retry_period_s=1)
        b = LeaseElector(FileLeaseApi(path), namespace="default", name=name, identity="b", clock=clock,
                         lease_duration_s=5, retry_period_s=1)
        assert await a.step() is True and a.holds()
        assert await b.step() is False and not b.holds()
        now[0] += dt.timedelta(seconds=4)
        assert await a.step() is True  # renewed within the lease
        now[0] += dt.timedelta(seconds=4)
        assert await b.step() is False  # 4 s since a's renewal: still a's
        # a freezes (no renewal); once the lease runs out b takes over, and a, thawed, no
        # longer claims it even before its next step.
        now[0] += dt.timedelta(seconds=2)
        assert not a.holds()
        assert await b.step() is True and b.holds()
        lease = json.loads(path.read_text())["spec"]
        assert lease["holderIdentity"] == "b" and lease["leaseTransitions"] == 1 and lease["leaseDurationSeconds"] == 5
        assert await a.step() is False and not a.leader
        await b.release()  # graceful shutdown: a takes over at once, not 5 s later
        assert await a.step() is True

    asyncio.run(main())


def test_a_lock_held_forever_is_an_error_not_a_wait(tmp_path):
    """A holder frozen inside a call keeps the lock; the others answer 503 (a failed election
    step) after ~0.2 s instead of blocking the event loop on it."""
    async def main() -> None:
        api = FileLeaseApi(tmp_path / "lease.json")
        fd = os.open(api.lock_path, os.O_RDWR | os.O_CREAT)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            loop = asyncio.get_running_loop()
            t = loop.time()
            status, body = await api.call("GET", "/leases/x")
            assert status == 503 and "does not let go" in body["message"]
            assert 0.15 < loop.time() - t < 2
        finally:
            os.close(fd)
        assert (await api.call("GET", "/leases/x"))[0] == 404

    asyncio.run(main())
