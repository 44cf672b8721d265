"""A Lease kept in a local file, for leader election without an API server (file discovery).

`LeaseElector` (discovery/kubernetes.py) talks to the API server through `call(method, path,
body) -> (status, body)` on one Lease: GET it, POST it when missing, PUT it back carrying the
resourceVersion it read. `FileLeaseApi` answers those three calls from a JSON file with the same
semantics — 404 when there is no Lease yet, 409 Conflict when the resourceVersion is stale (someone
wrote in between) — so two pickers on one machine elect a leader exactly as two pods do against
a cluster: the holder renews every retry period, a stopped or hung holder stops renewing and loses
the Lease once `leaseDurationSeconds` have passed, a shutting-down holder hands it over at once.

Each call holds an exclusive `flock` on `<file>.lock` only while it reads and writes (the kernel
drops it when a holder dies), taken without blocking: a holder frozen mid-call (SIGSTOP) makes the
others answer 503 until it is gone, never wait on it. Writes replace the file atomically.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import time
from pathlib import Path
from typing import Any

LOCK_ATTEMPTS = 20
LOCK_RETRY_S = 0.01


class FileLeaseApi:
    """The Lease subset of the Kubernetes API that `LeaseElector` uses, on one file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")

    async def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        for _ in range(LOCK_ATTEMPTS):
            status = self._locked(method, body)
            if status is not None:
                return status
            await asyncio.sleep(LOCK_RETRY_S)
        return 503, {"kind": "Status", "message": f"lease file {self.path} is locked by a process that does not let go"}

    def _locked(self, method: str, body: dict[str, Any] | None) -> tuple[int, Any] | None:
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return None
            return self._apply(method, body)
        finally:
            os.close(fd)  # releases the lock

    def _read(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return None

    def _write(self, lease: dict[str, Any]) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(lease))
        os.replace(tmp, self.path)

    def _apply(self, method: str, body: dict[str, Any] | None) -> tuple[int, Any]:
        current = self._read()
        if method == "GET":
            return (404, {"kind": "Status", "code": 404}) if current is None else (200, current)
        if body is None:
            return 400, {"kind": "Status", "message": f"{method} needs a body"}
        if method == "POST":
            if current is not None:
                return 409, {"kind": "Status", "reason": "AlreadyExists", "code": 409}
            version = 1
        elif method == "PUT":
            if current is None:
                return 404, {"kind": "Status", "code": 404}
            sent = (body.get("metadata") or {}).get("resourceVersion")
            have = current["metadata"]["resourceVersion"]
            if sent != have:
                return 409, {"kind": "Status", "reason": "Conflict", "code": 409}
            version = int(have) + 1
        else:
            return 405, {"kind": "Status", "message": f"method {method} not supported"}
        lease = json.loads(json.dumps(body))
        lease.setdefault("metadata", {})["resourceVersion"] = str(version)
        lease["metadata"].setdefault("creationTimestamp", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        self._write(lease)
        return (201 if method == "POST" else 200), lease
