"""Kubernetes discovery: watch Pods, InferencePool, InferenceObjective, InferenceModelRewrite in the
pool's namespace through the REST API (in-cluster service-account token), plus optional
Lease-based leader election (coordination.k8s.io/v1 Lease `epp-<ns>-<pool>`).

Each resource kind is listed, then watched from the list's resourceVersion; a watch that ends
(timeout, broken connection) resumes from the last version seen, and a 410 Gone (that version
was compacted away) or another error status leads to a relist. The datastore is rebuilt from the
cached objects after every event. Outside a pod, `--kubeconfig` gives the server and credentials.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import socket
import ssl
import uuid
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote

import orjson

from ..datastore import Datastore, Endpoint, parse_objective, parse_pool, parse_rewrite, pool_ref_name, selector_matches
from ..errors import ConfigError
from ..http11 import HttpConnection, HttpError
from .kubeconfig import load_kubeconfig

log = logging.getLogger(__name__)

SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")

RESOURCES = {
    "pods": "/api/v1/namespaces/{ns}/pods",
    "inferencepools": "/apis/inference.networking.k8s.io/v1/namespaces/{ns}/inferencepools",
    "inferenceobjectives": "/apis/llm-d.ai/v1alpha2/namespaces/{ns}/inferenceobjectives",
    "inferencemodelrewrites": "/apis/llm-d.ai/v1alpha2/namespaces/{ns}/inferencemodelrewrites",
}
LEASES = "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases"


class KubeApi:
    """Minimal JSON client for the API server; one connection per call (watches hold their own)."""

    def __init__(self, host: str, port: int, *, token_file: Path | None, ssl_context: ssl.SSLContext | None,
                 token: str | None = None) -> None:
        self.host, self.port, self.token_file, self.ssl, self.token = host, port, token_file, ssl_context, token

    @classmethod
    def in_cluster(cls) -> KubeApi:
        host = os.environ.get("KUBERNETES_SERVICE_HOST")
        port = int(os.environ.get("KUBERNETES_SERVICE_PORT", "443"))
        if not host:
            raise ConfigError("kubernetes discovery: not running in a pod (KUBERNETES_SERVICE_HOST is unset) "
                              "and no --kubeconfig given")
        ctx = ssl.create_default_context(cafile=str(SA_DIR / "ca.crt"))
        return cls(host, port, token_file=SA_DIR / "token", ssl_context=ctx)

    @classmethod
    def from_kubeconfig(cls, path: Path) -> KubeApi:
        c = load_kubeconfig(path)
        return cls(c.host, c.port, token_file=c.token_file, ssl_context=c.ssl_context, token=c.token)

    def _headers(self) -> dict[str, str]:
        h = {"Accept": "application/json", "Content-Type": "application/json"}
        if self.token_file is not None:
            # Re-read every call: projected service-account tokens rotate.
            h["Authorization"] = "Bearer " + self.token_file.read_text().strip()
        elif self.token:
            h["Authorization"] = "Bearer " + self.token
        return h

    def _conn(self, timeout: float) -> HttpConnection:
        return HttpConnection(self.host, self.port, ssl=self.ssl, timeout=timeout)

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        conn = self._conn(10)
        try:
            status, _, data = await conn.request(method, path, self._headers(),
                                                 orjson.dumps(body) if body is not None else None)
        finally:
            conn.close()
        try:
            return status, orjson.loads(data) if data else None
        except orjson.JSONDecodeError:
            return status, None

    def watch(self, path: str):
        return self._conn(30).stream_lines(path, self._headers())


class ObjectCache:
    """The current objects of one kind, keyed by namespace/name."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.resource_version = ""

    @staticmethod
    def key(obj: dict[str, Any]) -> str:
        m = obj.get("metadata") or {}
        return f"{m.get('namespace', '')}/{m.get('name', '')}"

    def replace(self, items: list[dict[str, Any]], resource_version: str) -> None:
        self.items = {self.key(o): o for o in items}
        self.resource_version = resource_version

    def apply(self, event: dict[str, Any]) -> bool:
        """Apply one watch event; returns False when the watch must restart with a relist."""
        etype, obj = event.get("type"), event.get("object") or {}
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        if etype == "ERROR":
            return False
        if etype in ("ADDED", "MODIFIED"):
            self.items[self.key(obj)] = obj
        elif etype == "DELETED":
            self.items.pop(self.key(obj), None)
        if rv:
            self.resource_version = rv
        return True


def pod_ready(pod: dict[str, Any]) -> bool:
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    if meta.get("deletionTimestamp") or not status.get("podIP"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


def build_endpoints(pool_obj: dict[str, Any], pods: list[dict[str, Any]]) -> list[Endpoint]:
    pool = parse_pool(pool_obj)
    out = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
        if not selector_matches(pool.selector, labels) or not pod_ready(pod):
            continue
        for port in pool.target_ports:
            out.append(Endpoint(meta.get("name", ""), meta.get("namespace", pool.namespace), pod["status"]["podIP"],
                                port, tuple(sorted(labels.items()))))
    return out


class KubernetesDiscovery:
    def __init__(self, store: Datastore, api: KubeApi, *, pool_name: str, pool_namespace: str,
                 leader_election: bool = False, on_leader: Callable[[bool], None] | None = None,
                 identity: str | None = None) -> None:
        self.store = store
        self.api = api
        self.pool_name = pool_name
        self.ns = pool_namespace
        self.caches = {kind: ObjectCache() for kind in RESOURCES}
        self.listed: set[str] = set()
        self.elector = LeaseElector(api, namespace=pool_namespace, name=lease_name(pool_namespace, pool_name),
                                    identity=identity or f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}",
                                    on_change=on_leader) if leader_election else None
        self._tasks: list[asyncio.Task[None]] = []

    def rebuild(self) -> None:
        """Recompute the datastore from the caches (cheap: a pool has tens of pods)."""
        pools = self.caches["inferencepools"].items
        pool_obj = pools.get(f"{self.ns}/{self.pool_name}")
        if pool_obj is None:
            self.store.set_pool(None)
            self.store.set_endpoints([])
            return
        self.store.set_pool(parse_pool(pool_obj))
        mine = lambda o: pool_ref_name(o) == self.pool_name  # noqa: E731
        self.store.set_objectives([parse_objective(o) for o in self.caches["inferenceobjectives"].items.values() if mine(o)])
        rules = []
        for o in self.caches["inferencemodelrewrites"].items.values():
            if mine(o):
                rules.extend(parse_rewrite(o))
        self.store.set_rewrites(rules)
        new = build_endpoints(pool_obj, list(self.caches["pods"].items.values()))
        if set(new) != set(self.store.endpoints.values()):
            self.store.set_endpoints(new)
        if self.listed >= set(RESOURCES):
            self.store.synced = True

    async def list_kind(self, kind: str) -> None:
        path = RESOURCES[kind].format(ns=self.ns)
        status, body = await self.api.call("GET", path)
        cache = self.caches[kind]
        if status == 404 and kind != "pods":
            cache.replace([], "")  # CRD not installed: nothing of this kind exists
        elif status != 200 or not isinstance(body, dict):
            raise HttpError(f"list {kind}: HTTP {status}")
        else:
            cache.replace(body.get("items") or [], (body.get("metadata") or {}).get("resourceVersion", ""))
        self.listed.add(kind)
        self.rebuild()

    async def watch_kind(self, kind: str) -> bool:
        """Watch from the cached resourceVersion until the stream ends. Returns True when the
        watch can resume from where it stopped, False when the server ended it with an ERROR
        event (410 Gone: our version was compacted away) and the kind must be listed again."""
        cache = self.caches[kind]
        path = (RESOURCES[kind].format(ns=self.ns) + "?watch=1&allowWatchBookmarks=true&timeoutSeconds=300"
                + "&resourceVersion=" + quote(cache.resource_version))
        async for line in self.api.watch(path):
            event = orjson.loads(line)
            if event.get("type") == "BOOKMARK":
                cache.resource_version = event["object"]["metadata"]["resourceVersion"]
                continue
            if event.get("type") == "ERROR":
                status = event.get("object") or {}
                log.warning("watch %s from resourceVersion %s: %s (%s); relisting", kind, cache.resource_version,
                            status.get("message"), status.get("code"))
                return False
            cache.apply(event)
            self.rebuild()
        return True

    async def _run_kind(self, kind: str) -> None:
        """List, then watch; resume a watch that ended from the last resourceVersion seen (as
        client-go's reflector does) and list again only when the server says that version is
        gone, the kind is not served yet, or the server refused the watch."""
        listed = False
        while True:
            try:
                if not listed:
                    await self.list_kind(kind)
                    if not self.caches[kind].resource_version:
                        await asyncio.sleep(30)  # kind not served: look again later
                        continue
                    listed = True
                listed = await self.watch_kind(kind)
            except HttpError as e:  # the server answered with an error status: start over from a list
                log.warning("watch %s: %s; relisting", kind, e)
                listed = False
                await asyncio.sleep(1)
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as e:
                log.warning("watch %s: %s; resuming from resourceVersion %s", kind, e or type(e).__name__,
                            self.caches[kind].resource_version)
                await asyncio.sleep(1)

    async def run(self) -> None:
        self._tasks = [asyncio.create_task(self._run_kind(k), name=f"watch {k}") for k in RESOURCES]
        if self.elector is not None:
            self._tasks.append(asyncio.create_task(self.elector.run(), name="leader-election"))
        await asyncio.gather(*self._tasks)

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        if self.elector is not None:
            await self.elector.release()


def lease_name(namespace: str, pool: str) -> str:
    """The pool's Lease, named as the reference picker names it."""
    return f"epp-{namespace}-{pool}"


def _fmt(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(s: str | None) -> dt.datetime | None:
    if not s:
        return None
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00"))


class LeaseElector:
    """Active-passive leader election on a coordination.k8s.io/v1 Lease (optimistic concurrency:
    every write carries the resourceVersion it read, so two candidates cannot both win)."""

    def __init__(self, api: KubeApi, *, namespace: str, name: str, identity: str, lease_duration_s: int = 15,
                 retry_period_s: float = 2.0, on_change: Callable[[bool], None] | None = None,
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc)) -> None:
        self.api, self.ns, self.name, self.identity = api, namespace, name, identity
        self.duration = lease_duration_s
        self.retry = retry_period_s
        self.on_change = on_change
        self.clock = clock
        self.leader = False
        self._last_renew: dt.datetime | None = None

    def _set(self, leading: bool) -> None:
        if leading != self.leader:
            log.info("leader election: %s", "acquired" if leading else "lost")
            self.leader = leading
            if self.on_change:
                self.on_change(leading)

    def _spec(self, now: dt.datetime, transitions: int, acquire: str | None) -> dict[str, Any]:
        return {"holderIdentity": self.identity, "leaseDurationSeconds": self.duration,
                "acquireTime": acquire or _fmt(now), "renewTime": _fmt(now), "leaseTransitions": transitions}

    def holds(self) -> bool:
        """Leading with a renewal younger than the lease. A leader frozen past its lease (SIGSTOP,
        a stalled node) may have been replaced meanwhile: this turns false the moment it thaws,
        before its next `step` finds out."""
        return (self.leader and self._last_renew is not None
                and (self.clock() - self._last_renew).total_seconds() < self.duration)

    async def step(self) -> bool:
        """One acquire-or-renew attempt; returns whether we lead afterwards."""
        now = self.clock()
        base = LEASES.format(ns=self.ns)
        status, lease = await self.api.call("GET", f"{base}/{self.name}")
        if status == 404:
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.ns}, "spec": self._spec(now, 0, None)}
            status, _ = await self.api.call("POST", base, body)
            ok = status in (200, 201)
        elif status == 200 and isinstance(lease, dict):
            spec = lease.get("spec") or {}
            holder = spec.get("holderIdentity")
            renew = _parse(spec.get("renewTime")) or _parse(spec.get("acquireTime"))
            duration = int(spec.get("leaseDurationSeconds") or self.duration)
            expired = renew is None or (now - renew).total_seconds() > duration
            if holder == self.identity or expired or not holder:
                transitions = int(spec.get("leaseTransitions") or 0) + (0 if holder == self.identity else 1)
                acquire = spec.get("acquireTime") if holder == self.identity else None
                lease["spec"] = self._spec(now, transitions, acquire)
                status, _ = await self.api.call("PUT", f"{base}/{self.name}", lease)
                ok = status == 200  # 409 Conflict: someone else wrote first
            else:
                ok = False
        else:
            ok = False
        if ok:
            self._last_renew = now
        elif self.leader and self._last_renew is not None and (now - self._last_renew).total_seconds() < self.duration:
            ok = True  # a transient failure: our lease is still valid, keep leading until it runs out
        self._set(ok)
        return ok

    async def run(self) -> None:
        while True:
            try:
                await self.step()
            except (OSError, HttpError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
                log.warning("leader election: %s", e)
                now = self.clock()
                if self._last_renew is None or (now - self._last_renew).total_seconds() >= self.duration:
                    self._set(False)
            await asyncio.sleep(self.retry)

    async def release(self) -> None:
        """On shutdown, hand the lease over at once instead of letting it expire."""
        if not self.leader:
            return
        base = LEASES.format(ns=self.ns)
        try:
            status, lease = await self.api.call("GET", f"{base}/{self.name}")
            if status == 200 and (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                lease["spec"]["holderIdentity"] = ""
                lease["spec"]["renewTime"] = _fmt(self.clock() - dt.timedelta(seconds=self.duration + 1))
                await self.api.call("PUT", f"{base}/{self.name}", lease)
        except (OSError, HttpError, asyncio.TimeoutError):
            pass
        self._set(False)
