"""Loopback confinement for benchmark and test processes (IGW_LOOPBACK_NET, IGW_PORT_RANGE)."""

from __future__ import annotations

import socket

import pytest

from endpoint_picker import loopback as net


def test_defaults_are_the_historical_addresses(monkeypatch):
    monkeypatch.delenv("IGW_LOOPBACK_NET", raising=False)
    monkeypatch.delenv("IGW_PORT_RANGE", raising=False)
    assert net.local_host() == "127.0.0.1" and net.pod_host(1, 0) == "127.0.1.1" and net.pod_host(3, 7) == "127.0.3.8"
    first, below_ephemeral = net.free_port(), net.default_range()
    assert below_ephemeral is not None and first in below_ephemeral and net.free_port() != first


def test_default_ports_are_below_the_kernels_ephemeral_range(tmp_path):
    """A client connection's source port comes from the ephemeral range; ours must never."""
    kernel = open(net.EPHEMERAL_RANGE_FILE).read().split()
    assert net.default_range() == range(net.LOWEST_PORT, int(kernel[0]))
    f = tmp_path / "ip_local_port_range"
    f.write_text("40000\t60999\n")
    assert net.default_range(str(f)) == range(16384, 40000)
    f.write_text("17000 60999")                        # too little room below: the kernel chooses
    assert net.default_range(str(f)) is None
    with socket.socket() as srv, socket.socket() as client:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        client.connect(srv.getsockname())
        assert client.getsockname()[1] not in net.default_range()


def test_a_block_of_consecutive_ports(monkeypatch):
    """On an address of its own (127.0.41.1: no client connection's source), so the ports are ours."""
    host = "127.0.41.1"
    monkeypatch.setenv("IGW_PORT_RANGE", "40990-40999")
    monkeypatch.setattr(net, "_handed_out", set())
    monkeypatch.setattr(net, "_cursors", {range(40990, 41000): iter([40998, 40990, 40995, 40999])})
    with socket.socket() as held:                      # 40992 is taken: the block at 40990 does not fit
        held.bind((host, 40992))
        assert net.free_port_block(3, host) == 40995   # 40998: 41000 is outside the range
    assert {40995, 40996, 40997} <= net._handed_out


def test_a_confined_slice_keeps_every_listener_and_port_inside(monkeypatch):
    monkeypatch.setenv("IGW_LOOPBACK_NET", "127.0.40")
    monkeypatch.setenv("IGW_PORT_RANGE", "40990-40999")
    monkeypatch.setattr(net, "_cursors", {})
    monkeypatch.setattr(net, "_handed_out", set())
    assert net.local_host() == "127.0.40.1"
    hosts = {net.pod_host(1, i) for i in range(20)} | {net.pod_host(2, i) for i in range(150)} | {net.pod_host(3, i) for i in range(60)}
    assert len(hosts) == 230 and all(h.startswith("127.0.40.") for h in hosts)
    with socket.socket() as held:                      # a port someone else holds is skipped
        held.bind(("127.0.40.1", 40995))
        ports = [net.free_port() for _ in range(9)]
        with pytest.raises(RuntimeError, match="no free port left in IGW_PORT_RANGE 40990-40999"):
            net.free_port()
    assert sorted(ports) == [p for p in range(40990, 41000) if p != 40995]
    with pytest.raises(ValueError, match="does not fit"):
        net.pod_host(3, 60)


@pytest.mark.parametrize("var, value, message", [
    ("IGW_LOOPBACK_NET", "10.0.40", "127/8"),
    ("IGW_LOOPBACK_NET", "127.0.400", "127/8"),
    ("IGW_PORT_RANGE", "40000", "LOW-HIGH"),
    ("IGW_PORT_RANGE", "80-90", "1024 <= LOW"),
])
def test_bad_settings_are_refused(monkeypatch, var, value, message):
    monkeypatch.setenv(var, value)
    with pytest.raises(ValueError, match=message):
        net.local_host() if var == "IGW_LOOPBACK_NET" else net.free_port()
