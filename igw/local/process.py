"""One child process of a local stack: started in its own process group, tied to the supervisor.

Children run in their own process groups with PR_SET_PDEATHSIG, so they never outlive the
supervisor; `stop()` sends SIGTERM to the whole group, then SIGKILL after a timeout.
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import random
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Iterable

from endpoint_picker import loopback

from .state import kill_group

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


def free_port() -> int:
    """A port free on 127.0.0.1, where a local stack's control plane listens (endpoint_picker.loopback:
    below the kernel's ephemeral range, never the same one twice in this process)."""
    return loopback.free_port("127.0.0.1")


def free_address_base(n: int = 4, ports: Iterable[int] = (8000,), also: Iterable[int] = ()) -> str:
    """127.0.N.10 such that 127.0.N.10 .. 10+n-1 (and 127.0.N.10+k for k in `also`) can all bind
    every one of `ports` right now: the `--address-base` of a local run that must not collide."""
    hosts = [*range(n), *also]
    rng = random.Random()
    for _ in range(100):
        net = rng.randrange(20, 250)
        try:
            for i in hosts:
                for port in ports:
                    with socket.socket() as s:
                        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                        s.bind((f"127.0.{net}.{10 + i}", port))
            return f"127.0.{net}.10"
        except OSError:
            continue
    raise RuntimeError(f"no free loopback range of {len(hosts)} addresses for ports {list(ports)}")


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclasses.dataclass
class Proc:
    name: str
    kind: str                      # simulator | picker | envoy | ...
    argv: list[str]
    log: Path
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    popen: subprocess.Popen | None = None
    restarts: int = 0
    ready: bool = False
    restart_at: float | None = None
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            log.write(f"--- {time.strftime('%H:%M:%S')} start: {' '.join(self.argv)}\n".encode())
            log.flush()
            self.popen = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
                start_new_session=True, preexec_fn=_die_with_parent,
            )
        self.restart_at = None

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.running():
            kill_group(self.popen.pid, sig)

    def wait(self, timeout: float) -> bool:
        if self.popen is None:
            return True
        try:
            self.popen.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def stop(self, timeout: float = 5.0) -> None:
        if self.popen is None:
            return
        self.signal(signal.SIGTERM)
        if not self.wait(timeout):
            kill_group(self.popen.pid, signal.SIGKILL)
            self.wait(5)
        # Anything left in its process group (e.g. a child of the child) goes too.
        kill_group(self.popen.pid, signal.SIGKILL)

    def tail(self, n: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "pid": self.pid, "log": str(self.log),
                "restarts": self.restarts, "ready": self.ready, "running": self.running(), **self.meta}
