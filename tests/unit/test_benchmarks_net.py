"""Loopback confinement for benchmark and test processes (IGW_LOOPBACK_NET, IGW_PORT_RANGE)."""

from __future__ import annotations

import socket

import pytest

from endpoint_picker.testing import net


def test_defaults_are_the_historical_addresses(monkeypatch):
    monkeypatch.delenv("IGW_LOOPBACK_NET", raising=False)
    monkeypatch.delenv("IGW_PORT_RANGE", raising=False)
    assert net.local_host() == "127.0.0.1" and net.pod_host(1, 0) == "127.0.1.1" and net.pod_host(3, 7) == "127.0.3.8"
    assert 1024 < net.free_port() < 65536


def test_a_confined_slice_keeps_every_listener_and_port_inside(monkeypatch):
    monkeypatch.setenv("IGW_LOOPBACK_NET", "127.0.40")
    monkeypatch.setenv("IGW_PORT_RANGE", "40990-40999")
    monkeypatch.setattr(net, "_cursor", None)
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
