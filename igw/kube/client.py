"""A small synchronous client for the Kubernetes REST API (httpx), enough to drive a cluster from
tests and tools: server-side apply, get/list/create/patch/delete, TokenRequest, discovery.

Objects are plain dicts (manifests as `igw synth` writes them). The REST path of a kind is found
through API discovery, refreshed once when a kind is unknown (a CRD that was just established).
Errors carry the server's Status: `ApiError.status`, `.reason`, `.message` (for a CEL rule this
names the field and the rule's message), `.causes`.
"""

from __future__ import annotations

import json
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar
from urllib.parse import quote

import httpx

T = TypeVar("T")


class ApiError(Exception):
    def __init__(self, method: str, path: str, status: int, body: Any) -> None:
        self.method, self.path, self.status = method, path, status
        body = body if isinstance(body, dict) else {}
        self.reason: str = body.get("reason", "")
        self.message: str = body.get("message", "") or f"HTTP {status}"
        self.causes: list[dict[str, Any]] = (body.get("details") or {}).get("causes") or []
        super().__init__(f"{method} {path}: {status} {self.reason}: {self.message}")


@dataclass(frozen=True)
class ResourceType:
    """Where a kind lives in the REST API."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool

    def path(self, namespace: str | None = None, name: str | None = None, subresource: str | None = None) -> str:
        base = f"/api/{self.api_version}" if "/" not in self.api_version else f"/apis/{self.api_version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        if name:
            base += f"/{quote(name, safe='')}"
        if subresource:
            base += f"/{subresource}"
        return base


def until(fn: Callable[[], T], *, timeout: float, what: str, interval: float = 0.1) -> T:
    """Poll `fn` until it returns something truthy; TimeoutError naming `what` and the last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = fn()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what}: not true after {timeout:g}s (last: {last!r})")
        time.sleep(interval)


class KubeClient:
    def __init__(self, server: str, *, token: str, ca_file: Path, timeout: float = 30.0) -> None:
        self.server = server
        self._http = httpx.Client(base_url=server, verify=ssl.create_default_context(cafile=str(ca_file)),
                                  headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
                                  timeout=timeout)
        self._types: dict[str, dict[str, ResourceType]] = {}   # apiVersion -> kind -> type

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> KubeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ raw
    def request(self, method: str, path: str, *, body: Any = None, params: dict[str, Any] | None = None,
                content_type: str = "application/json", ok: tuple[int, ...] = (200, 201)) -> Any:
        content = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": content_type} if content is not None else {}
        r = self._http.request(method, path, content=content, params=params, headers=headers)
        try:
            data = r.json() if r.content else None
        except ValueError:
            data = {"message": r.text[:500]}
        if r.status_code not in ok:
            raise ApiError(method, path, r.status_code, data)
        return data

    def ready(self) -> bool:
        """GET /readyz answered 200 (every readiness check of the API server passes)."""
        return self._http.get("/readyz").status_code == 200

    # ------------------------------------------------------------------ discovery
    def _discover(self, api_version: str) -> dict[str, ResourceType]:
        path = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        try:
            doc = self.request("GET", path)
        except ApiError as e:
            if e.status == 404:
                return {}
            raise
        return {r["kind"]: ResourceType(api_version, r["kind"], r["name"], bool(r["namespaced"]))
                for r in doc.get("resources", []) if "/" not in r["name"]}

    def resource_type(self, api_version: str, kind: str) -> ResourceType:
        """The REST mapping of a kind; LookupError when the server does not serve it."""
        types = self._types.get(api_version)
        if types is None or kind not in types:
            types = self._types[api_version] = self._discover(api_version)
        if kind not in types:
            raise LookupError(f"the server does not serve {kind} in {api_version}")
        return types[kind]

    def _locate(self, obj: dict[str, Any]) -> tuple[ResourceType, str | None, str]:
        meta = obj.get("metadata") or {}
        rt = self.resource_type(obj["apiVersion"], obj["kind"])
        return rt, (meta.get("namespace") or "default") if rt.namespaced else None, meta["name"]

    # ------------------------------------------------------------------ objects
    def apply(self, obj: dict[str, Any], *, field_manager: str = "igw", force: bool = True,
              dry_run: bool = False) -> dict[str, Any]:
        """Server-side apply (what `kubectl apply --server-side` does); returns the stored object."""
        rt, ns, name = self._locate(obj)
        params: dict[str, Any] = {"fieldManager": field_manager, "force": "true" if force else "false"}
        if dry_run:
            params["dryRun"] = "All"
        return self.request("PATCH", rt.path(ns, name), body=obj, params=params,
                            content_type="application/apply-patch+yaml")

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        rt, ns, _ = self._locate(obj)
        return self.request("POST", rt.path(ns), body=obj)

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        rt = self.resource_type(api_version, kind)
        try:
            return self.request("GET", rt.path(namespace, name))
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    def list(self, api_version: str, kind: str, namespace: str | None = None, *,
             label_selector: str | None = None) -> dict[str, Any]:
        """The List object (items and metadata.resourceVersion)."""
        rt = self.resource_type(api_version, kind)
        params = {"labelSelector": label_selector} if label_selector else None
        return self.request("GET", rt.path(namespace), params=params)

    def patch(self, api_version: str, kind: str, name: str, patch: dict[str, Any], *, namespace: str | None = None,
              subresource: str | None = None, patch_type: str = "merge") -> dict[str, Any]:
        """JSON merge patch (`merge`) or strategic merge patch (`strategic`, built-in kinds only)."""
        rt = self.resource_type(api_version, kind)
        ctype = {"merge": "application/merge-patch+json", "strategic": "application/strategic-merge-patch+json"}[patch_type]
        return self.request("PATCH", rt.path(namespace, name, subresource), body=patch, content_type=ctype)

    def delete(self, api_version: str, kind: str, name: str, *, namespace: str | None = None,
               grace_period_s: int | None = None, missing_ok: bool = True) -> None:
        rt = self.resource_type(api_version, kind)
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        if grace_period_s is not None:
            body["gracePeriodSeconds"] = grace_period_s
        try:
            self.request("DELETE", rt.path(namespace, name), body=body, ok=(200, 202))
        except ApiError as e:
            if not (missing_ok and e.status == 404):
                raise

    def watch(self, api_version: str, kind: str, namespace: str | None = None, *, resource_version: str,
              timeout_s: int = 30) -> Iterator[dict[str, Any]]:
        """Watch events from `resource_version` (ends after timeout_s or when the caller stops)."""
        rt = self.resource_type(api_version, kind)
        params = {"watch": "1", "resourceVersion": resource_version, "timeoutSeconds": str(timeout_s)}
        with self._http.stream("GET", rt.path(namespace), params=params, timeout=timeout_s + 10) as r:
            if r.status_code != 200:
                r.read()
                raise ApiError("GET", rt.path(namespace), r.status_code, r.json() if r.content else None)
            for line in r.iter_lines():
                if line.strip():
                    yield json.loads(line)

    # ------------------------------------------------------------------ helpers
    def create_token(self, namespace: str, service_account: str, *, expiration_s: int = 3600,
                     audiences: list[str] | None = None) -> str:
        """A bound token for a ServiceAccount (the TokenRequest API, as the kubelet mounts them)."""
        spec: dict[str, Any] = {"expirationSeconds": expiration_s}
        if audiences:
            spec["audiences"] = audiences
        rt = self.resource_type("v1", "ServiceAccount")
        out = self.request("POST", rt.path(namespace, service_account, "token"),
                           body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec})
        return out["status"]["token"]

    def ensure_namespace(self, name: str) -> None:
        """Create a Namespace unless it exists."""
        if self.get("v1", "Namespace", name) is None:
            try:
                self.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
            except ApiError as e:
                if e.status != 409:
                    raise

    def wait_established(self, crd_name: str, timeout: float = 30) -> None:
        def established() -> bool:
            crd = self.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", crd_name) or {}
            return any(c.get("type") == "Established" and c.get("status") == "True"
                       for c in (crd.get("status") or {}).get("conditions") or [])

        until(established, timeout=timeout, what=f"CRD {crd_name} Established")
