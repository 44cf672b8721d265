"""Startup checks of the local supervisor: the addresses a plan needs are free before anything
starts (`check_ports`), and processes become ready before a deadline (`wait_ready`). Either
failure is a `StartupError` whose message says what to change or shows the log's last lines."""

from __future__ import annotations

import socket
import time
from typing import Callable

from .plan import LocalPlan
from .process import Proc


class StartupError(RuntimeError):
    pass


def check_ports(plan: LocalPlan, listen_address: str) -> None:
    """Fail before starting anything when an address we need is taken."""
    wanted = [(listen_address, l.local_port, f"gateway listener {l.gateway} {l.name}") for l in plan.listeners]
    wanted += [(r.address, port, f"pod {r.name}") for r in plan.replicas for port in r.ports]
    for host, port, what in wanted:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, port))
            except OSError as e:
                hint = " (use --port)" if what.startswith("gateway") else " (use --address-base)"
                raise StartupError(f"{host}:{port} for {what} is not available: {e.strerror}{hint}") from None


def wait_ready(what: str, procs: list[Proc], check: Callable[[Proc], bool], timeout: float,
               interrupted: Callable[[], str | None]) -> None:
    """Poll `check` until every process passes it (marking it ready); a process that exits, the
    deadline, or `interrupted()` returning a reason ends the wait with a StartupError."""
    deadline = time.monotonic() + timeout
    pending = list(procs)
    while pending:
        for p in list(pending):
            if not p.running():
                raise StartupError(f"{p.kind} {p.name} exited with status {p.popen.returncode if p.popen else '?'} "
                                   f"while starting; last lines of {p.log}:\n{p.tail()}")
            if check(p):
                p.ready = True
                pending.remove(p)
        reason = interrupted()
        if reason:
            raise StartupError(reason)
        if not pending:
            break
        if time.monotonic() > deadline:
            names = ", ".join(p.name for p in pending)
            raise StartupError(f"{what} not ready after {timeout:.0f}s: {names}; last lines of "
                               f"{pending[0].log}:\n{pending[0].tail()}")
        time.sleep(0.05)
