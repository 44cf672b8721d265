"""Where test and benchmark processes listen: loopback addresses and ports, optionally confined.

On a machine shared by several suites each one can be given its own slice of loopback:

    IGW_LOOPBACK_NET=127.0.40   IGW_PORT_RANGE=40000-40999

Unset (the default), control-plane listeners use 127.0.0.1, "pods" the historical
127.0.<block>.<i> addresses, and ports come from the kernel. Set, every listener is in
IGW_LOOPBACK_NET (<net>.1 for control planes, pods by block: see `pod_host`) and every port in
IGW_PORT_RANGE, checked free by binding it first.
"""

from __future__ import annotations

import itertools
import os
import socket

_handed_out: set[int] = set()
_cursor = None


def loopback_net() -> str | None:
    """The confined /24 (e.g. "127.0.40"), or None."""
    net = os.environ.get("IGW_LOOPBACK_NET", "").strip().rstrip(".")
    if not net:
        return None
    parts = net.split(".")
    if len(parts) != 3 or parts[0] != "127" or not all(p.isdigit() and int(p) < 256 for p in parts):
        raise ValueError(f"IGW_LOOPBACK_NET={net!r}: expected the first three octets of a 127/8 /24, e.g. 127.0.40")
    return net


def local_host() -> str:
    """Address for control-plane listeners (Envoy gateways, pickers, admin ports)."""
    net = loopback_net()
    return f"{net}.1" if net else "127.0.0.1"


# Inside a confined /24, each historical block gets its own range of host numbers.
_BLOCK_BASE = {1: 10, 2: 100, 3: 30}
_BLOCK_SIZE = {1: 20, 2: 150, 3: 60}


def pod_host(block: int, i: int) -> str:
    """The i-th (0-based) "pod" address of a block: 127.0.<block>.<i+1> by default."""
    net = loopback_net()
    if not net:
        return f"127.0.{block}.{i + 1}"
    if block not in _BLOCK_BASE or i >= _BLOCK_SIZE[block]:
        raise ValueError(f"pod {i} of block {block} does not fit in {net}.0/24")
    return f"{net}.{_BLOCK_BASE[block] + i}"


def _port_range() -> range | None:
    spec = os.environ.get("IGW_PORT_RANGE", "").strip()
    if not spec:
        return None
    lo, _, hi = spec.partition("-")
    try:
        r = range(int(lo), int(hi) + 1)
    except ValueError:
        raise ValueError(f"IGW_PORT_RANGE={spec!r}: expected LOW-HIGH, e.g. 40000-40999") from None
    if not r or r.start < 1024 or r.stop > 65536:
        raise ValueError(f"IGW_PORT_RANGE={spec!r}: expected 1024 <= LOW <= HIGH <= 65535")
    return r


def free_port(host: str | None = None) -> int:
    """A port free on `host` (default local_host()); inside IGW_PORT_RANGE when set, and never
    the same one twice in this process."""
    global _cursor
    host = host or local_host()
    r = _port_range()
    if r is None:
        with socket.socket() as s:
            s.bind((host, 0))
            return s.getsockname()[1]
    if _cursor is None:
        start = (os.getpid() * 7) % len(r)   # processes sharing the range start apart
        _cursor = itertools.cycle(list(r[start:]) + list(r[:start]))
    for _ in range(len(r)):
        port = next(_cursor)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port left in IGW_PORT_RANGE {r.start}-{r.stop - 1} on {host}")
