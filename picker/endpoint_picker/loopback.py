"""Where local processes listen: loopback addresses and ports, optionally confined.

Used by `igw up --stack local`, the test tiers and the benchmarks. Ports come from below the
kernel's ephemeral range (net.ipv4.ip_local_port_range, 32768-60999 by default): a port picked
there can be taken, between our check and the child's bind, as the source port of any client
connection on the machine (a busy test suite makes thousands), and the child then fails with
EADDRINUSE. Below the range only our own allocations compete; each process walks the range from a
random start, checks a port free by binding it, and never hands the same one out twice.

On a machine shared by several suites each one can be given its own slice of loopback:

    IGW_LOOPBACK_NET=127.0.40   IGW_PORT_RANGE=40000-40999

Unset (the default), control-plane listeners use 127.0.0.1 and "pods" the historical
127.0.<block>.<i> addresses. Set, every listener is in IGW_LOOPBACK_NET (<net>.1 for control
planes, pods by block: see `pod_host`) and every port in IGW_PORT_RANGE.
"""

from __future__ import annotations

import itertools
import os
import random
import socket
from typing import Iterator

_handed_out: set[int] = set()


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


EPHEMERAL_RANGE_FILE = "/proc/sys/net/ipv4/ip_local_port_range"
LOWEST_PORT = 16384
"""The default range is LOWEST_PORT up to the kernel's ephemeral range (16,384 ports on a default kernel)."""


def _configured_range() -> range | None:
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


def default_range(ephemeral_file: str = EPHEMERAL_RANGE_FILE) -> range | None:
    """LOWEST_PORT up to the first ephemeral port; None (ports from the kernel) when the ephemeral
    range starts too low to leave 1,024 ports below it."""
    try:
        low = int(open(ephemeral_file).read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return range(LOWEST_PORT, low) if low - LOWEST_PORT >= 1024 else None


def port_range() -> range | None:
    """The ports free_port hands out: IGW_PORT_RANGE when set, else `default_range()`."""
    return _configured_range() or default_range()


_cursors: dict[range, Iterator[int]] = {}


def _walk(r: range) -> Iterator[int]:
    if r not in _cursors:
        start = random.SystemRandom().randrange(len(r))   # processes sharing the range start apart
        _cursors[r] = itertools.cycle(list(r[start:]) + list(r[:start]))
    return _cursors[r]


def free_port(host: str | None = None) -> int:
    """A port free on `host` (default local_host()), from `port_range()`, never the same one twice
    in this process."""
    host = host or local_host()
    r = port_range()
    if r is None:
        with socket.socket() as s:
            s.bind((host, 0))
            return s.getsockname()[1]
    cursor = _walk(r)
    for _ in range(len(r)):
        port = next(cursor)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port left in {'IGW_PORT_RANGE ' if _configured_range() else ''}"
                       f"{r.start}-{r.stop - 1} on {host}")


def free_port_block(n: int, host: str | None = None) -> int:
    """The first of `n` consecutive ports free on `host` (a listener that takes port, port+1, ...)."""
    host = host or local_host()
    for _ in range(200):
        first = free_port(host)
        block = [first + i for i in range(1, n)]
        r = port_range()
        if any(p in _handed_out or (r is not None and p not in r) for p in block):
            continue
        try:
            for p in block:
                with socket.socket() as s:
                    s.bind((host, p))
        except OSError:
            continue
        _handed_out.update(block)
        return first
    raise RuntimeError(f"no {n} consecutive free ports on {host}")
