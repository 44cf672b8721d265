"""Kubernetes discovery and Lease election against a tiny fake API server on loopback.

What a real API server does is tested against one: tests/real_k8s runs the picker with its own
ServiceAccount token against kube-apiserver (list/watch, readiness flips, deletions, pool,
objective and rewrite edits, a watch resumed after a cut and one answered 410 Gone after etcd
compaction, the rendered Role, leader election through real Leases). This fake stays only for
what the real server cannot be made to do on demand:

- refuse a watch request with a plain HTTP 410 (kube-apiserver 1.36 sends 410 as an ERROR event
  inside a 200 stream; older servers and proxies in between answer with the status itself);
- serve some kinds while another kind's CRD is missing (404), in a cluster whose CRDs the other
  tests share;
- send a BOOKMARK at a chosen moment (the watch cache sends them on its own schedule);
- drive the Lease elector with a fake clock (a stale leader's late renewal, exact transitions).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import orjson

from endpoint_picker.datastore import Datastore
from endpoint_picker.discovery.kubernetes import KubeApi, KubernetesDiscovery, LeaseElector, ObjectCache, pod_ready

NS = "llm"


def pod(name: str, ip: str, *, ready: bool = True, app: str = "pool", rv: str = "1") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": NS, "labels": {"app": app}, "resourceVersion": rv},
            "status": {"podIP": ip, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


POOL = {"apiVersion": "inference.networking.k8s.io/v1", "kind": "InferencePool",
        "metadata": {"name": "pool", "namespace": NS, "resourceVersion": "5"},
        "spec": {"selector": {"matchLabels": {"app": "pool"}}, "targetPorts": [{"number": 8000}, {"number": 8001}]}}
OBJECTIVE = {"kind": "InferenceObjective", "metadata": {"name": "batch", "namespace": NS, "resourceVersion": "6"},
             "spec": {"poolRef": {"name": "pool"}, "priority": -1}}


class FakeApiServer:
    """Serves lists, one recorded watch stream per kind, and Leases with resourceVersion checks."""

    def __init__(self) -> None:
        self.lists: dict[str, list[dict[str, Any]]] = {}
        self.watch_events: dict[str, list[dict[str, Any]]] = {}
        self.leases: dict[str, dict[str, Any]] = {}
        self.rv = 100
        self.auth: list[str] = []
        self.list_calls: dict[str, int] = {}
        self.refuse_next_watch: dict[str, int] = {}   # kind -> HTTP status for its next watch request

    async def start(self) -> int:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    def _kind(self, path: str) -> str:
        return path.split("?")[0].rstrip("/").split("/")[-1]

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode().split("\r\n")
            method, path, _ = head[0].split(" ")
            hdrs = {k.lower(): v.strip() for k, _, v in (l.partition(":") for l in head[1:] if l)}
            self.auth.append(hdrs.get("authorization", ""))
            body = await reader.readexactly(int(hdrs.get("content-length", 0))) if "content-length" in hdrs else b""
            refusal = self.refuse_next_watch.pop(self._kind(path), None) if "watch=1" in path else None
            if refusal is not None:
                data = orjson.dumps({"kind": "Status", "code": refusal, "reason": "Expired"})
                writer.write(f"HTTP/1.1 {refusal} X\r\nContent-Type: application/json\r\n"
                             f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
                await writer.drain()
                return
            if "watch=1" in path:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
                for ev in self.watch_events.get(self._kind(path), []):
                    line = orjson.dumps(ev) + b"\n"
                    writer.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
                    await writer.drain()
                    await asyncio.sleep(0.01)
                try:
                    await asyncio.sleep(5)  # keep the watch open
                except asyncio.CancelledError:
                    pass
                return
            status, out = self.route(method, path, orjson.loads(body) if body else None)
            data = orjson.dumps(out)
            writer.write(f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def route(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        if "/leases" in path:
            name = path.split("/leases")[1].strip("/")
            if method == "GET":
                return (200, self.leases[name]) if name in self.leases else (404, {"reason": "NotFound"})
            if method == "POST":
                name = body["metadata"]["name"]
                if name in self.leases:
                    return 409, {"reason": "AlreadyExists"}
                self.rv += 1
                body["metadata"]["resourceVersion"] = str(self.rv)
                self.leases[name] = body
                return 201, body
            if method == "PUT":
                cur = self.leases.get(name)
                if cur is None or cur["metadata"]["resourceVersion"] != body["metadata"].get("resourceVersion"):
                    return 409, {"reason": "Conflict"}
                self.rv += 1
                body["metadata"]["resourceVersion"] = str(self.rv)
                self.leases[name] = body
                return 200, body
        kind = self._kind(path)
        self.list_calls[kind] = self.list_calls.get(kind, 0) + 1
        if kind in self.lists:
            return 200, {"items": self.lists[kind], "metadata": {"resourceVersion": "10"}}
        return 404, {"reason": "NotFound"}


def api_for(port: int, tmp_path) -> KubeApi:
    token = tmp_path / "token"
    token.write_text("sa-token\n")
    return KubeApi("127.0.0.1", port, token_file=token, ssl_context=None)


def test_pod_ready():
    assert pod_ready(pod("a", "10.0.0.1"))
    assert not pod_ready(pod("a", "10.0.0.1", ready=False))
    assert not pod_ready({"metadata": {"deletionTimestamp": "x"}, "status": pod("a", "1.1.1.1")["status"]})
    assert not pod_ready({"metadata": {}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}})  # no IP yet


def test_object_cache_events():
    c = ObjectCache()
    c.replace([pod("a", "1.1.1.1")], "1")
    assert c.apply({"type": "ADDED", "object": pod("b", "1.1.1.2", rv="2")})
    assert c.apply({"type": "DELETED", "object": pod("a", "1.1.1.1", rv="3")})
    assert list(c.items) == [f"{NS}/b"] and c.resource_version == "3"
    assert not c.apply({"type": "ERROR", "object": {"code": 410, "reason": "Expired"}})  # relist


def test_missing_crd_and_a_bookmark(tmp_path):
    """A kind whose CRD is missing (404) does not block sync; a BOOKMARK moves the watch's
    resourceVersion without an event."""
    async def main() -> None:
        fake = FakeApiServer()
        fake.lists = {"pods": [pod("a", "10.1.0.1"), pod("b", "10.1.0.2", ready=False), pod("c", "10.1.0.3", app="other")],
                      "inferencepools": [POOL], "inferenceobjectives": [OBJECTIVE]}
        # inferencemodelrewrites: CRD missing (404) must not block sync.
        fake.watch_events = {"pods": [
            {"type": "MODIFIED", "object": pod("b", "10.1.0.2", rv="11")},  # b becomes Ready
            {"type": "DELETED", "object": pod("a", "10.1.0.1", rv="12")},
            {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "13"}}},
        ]}
        port = await fake.start()
        store = Datastore()
        d = KubernetesDiscovery(store, api_for(port, tmp_path), pool_name="pool", pool_namespace=NS)
        task = asyncio.create_task(d.run())
        try:
            for _ in range(100):
                await asyncio.sleep(0.02)
                if store.synced and d.caches["pods"].resource_version == "13":
                    break
            assert store.synced
            assert set(store.endpoints) == {"10.1.0.2:8000", "10.1.0.2:8001"}  # one endpoint per target port
            assert store.priority_for(None, "batch") == -1
            assert d.caches["pods"].resource_version == "13"
            assert fake.auth[0] == "Bearer sa-token"
        finally:
            task.cancel()
            await d.stop()
            fake.server.close()

    asyncio.run(main())


def test_a_watch_refused_with_http_410_relists(tmp_path):
    """The pods watch is refused with HTTP 410 (not an ERROR event): the picker lists pods again
    and serves what that list says."""
    async def main() -> None:
        fake = FakeApiServer()
        fake.lists = {"pods": [pod("a", "10.1.0.1")], "inferencepools": [POOL]}
        fake.refuse_next_watch = {"pods": 410}
        port = await fake.start()
        store = Datastore()
        d = KubernetesDiscovery(store, api_for(port, tmp_path), pool_name="pool", pool_namespace=NS)
        task = asyncio.create_task(d.run())
        try:
            for _ in range(50):
                await asyncio.sleep(0.02)
                if store.synced:
                    break
            assert set(store.endpoints) == {"10.1.0.1:8000", "10.1.0.1:8001"}
            fake.lists["pods"] = [pod("b", "10.1.0.2")]  # what changed while the watch was refused
            for _ in range(150):  # the relist comes after a 1 s pause
                await asyncio.sleep(0.02)
                if fake.list_calls.get("pods") == 2:
                    break
            await asyncio.sleep(0.05)
            assert fake.list_calls["pods"] == 2 and "pods" not in fake.refuse_next_watch
            assert set(store.endpoints) == {"10.1.0.2:8000", "10.1.0.2:8001"}
        finally:
            task.cancel()
            await d.stop()
            fake.server.close()

    asyncio.run(main())


def test_lease_election_single_leader_and_takeover(tmp_path):
    async def main() -> None:
        fake = FakeApiServer()
        port = await fake.start()
        now = [dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)]
        clock = lambda: now[0]  # noqa: E731
        api = api_for(port, tmp_path)
        changes: list[tuple[str, bool]] = []
        a = LeaseElector(api, namespace=NS, name="epp-llm-pool", identity="a", clock=clock,
                         on_change=lambda v: changes.append(("a", v)))
        b = LeaseElector(api, namespace=NS, name="epp-llm-pool", identity="b", clock=clock,
                         on_change=lambda v: changes.append(("b", v)))
        try:
            assert await a.step() is True  # creates the Lease
            assert await b.step() is False  # held and fresh
            now[0] += dt.timedelta(seconds=5)
            assert await a.step() is True  # renew
            assert fake.leases["epp-llm-pool"]["spec"]["holderIdentity"] == "a"
            # a stops renewing; after the lease duration b takes over.
            now[0] += dt.timedelta(seconds=16)
            assert await b.step() is True
            lease = fake.leases["epp-llm-pool"]["spec"]
            assert lease["holderIdentity"] == "b" and lease["leaseTransitions"] == 1
            # a's stale renew now loses: the lease is fresh and held by b.
            assert await a.step() is False
            await b.release()  # graceful shutdown hands over at once
            assert await a.step() is True
            assert changes == [("a", True), ("b", True), ("a", False), ("b", False), ("a", True)]
        finally:
            fake.server.close()

    asyncio.run(main())
