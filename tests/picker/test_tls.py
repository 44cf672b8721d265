"""Secure serving (the picker's default, as the reference's): a real Envoy speaking TLS to the
picker, on both transports, with a self-signed or a mounted certificate."""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from endpoint_picker.tls import self_signed

from .conftest import POOL


def _served_certificate(port: int) -> bytes:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE  # as gateways do (GIE #582)
    ctx.set_alpn_protocols(["h2"])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, ctx.wrap_socket(raw) as tls:
        assert tls.selected_alpn_protocol() == "h2"
        return tls.getpeercert(binary_form=True)


@pytest.mark.parametrize("transport", ["h2", "grpcio"])
def test_envoy_reaches_a_tls_picker_with_a_self_signed_certificate(stack, transport):
    s = stack({"a": {}, "b": {}}, config={"ext_proc": {"transport": transport}}, secure=True)
    r = s.post(json={"model": "m", "prompt": "hello"})
    assert r.status_code == 200, r.text
    assert s.pod(r) in ("a", "b")
    assert _served_certificate(s.picker.grpc_port)  # a certificate, whatever it is


def test_cert_path_serves_the_mounted_certificate(stack, tmp_path: Path):
    cert, _ = self_signed(tmp_path)
    s = stack({"a": {}}, secure=True, picker_args=["--cert-path", str(tmp_path)])
    assert s.post(json={"model": "m", "prompt": "hello"}).status_code == 200
    served = _served_certificate(s.picker.grpc_port)
    assert served == ssl.PEM_cert_to_DER_cert(cert.read_text())


def test_cert_path_without_the_key_exits_2_with_the_expected_names(tmp_path: Path):
    (tmp_path / "tls.crt").write_text("x")
    r = subprocess.run([sys.executable, "-m", "endpoint_picker.main", "--pool-name", POOL, "--discovery", "files",
                        "--manifests-dir", str(tmp_path), "--cert-path", str(tmp_path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert f"--cert-path {tmp_path}: missing {tmp_path / 'tls.key'} (expected tls.crt and tls.key)" in r.stderr


def test_secure_serving_flag_reads_go_style_booleans():
    from endpoint_picker.main import parse_args

    base = ["--pool-name", "p"]
    assert parse_args(base).secure_serving is True
    assert parse_args(base + ["--secure-serving"]).secure_serving is True
    assert parse_args(base + ["--secure-serving=false"]).secure_serving is False
    assert parse_args(base + ["--secure-serving", "true"]).secure_serving is True
    with pytest.raises(SystemExit):
        parse_args(base + ["--secure-serving=maybe"])


def test_renewed_certificate_is_served_to_new_connections(stack, tmp_path: Path):
    import os
    import time

    first, _ = self_signed(tmp_path)
    s = stack({"a": {}}, secure=True, picker_args=["--cert-path", str(tmp_path)])
    assert _served_certificate(s.picker.grpc_port) == ssl.PEM_cert_to_DER_cert(first.read_text())
    # A Secret update: a new pair appears and replaces the old one atomically.
    new_dir = tmp_path / "new"
    new_dir.mkdir()
    renewed, key = self_signed(new_dir)
    os.replace(key, tmp_path / "tls.key")
    os.replace(renewed, tmp_path / "tls.crt")
    want = ssl.PEM_cert_to_DER_cert((tmp_path / "tls.crt").read_text())
    deadline = time.monotonic() + 10
    while _served_certificate(s.picker.grpc_port) != want:
        assert time.monotonic() < deadline, "renewed certificate never served"
        time.sleep(0.2)
    assert s.post(json={"model": "m", "prompt": "hello"}).status_code == 200  # Envoy reconnects fine


def test_reloader_keeps_the_old_pair_while_files_disagree(tmp_path: Path):
    from endpoint_picker.tls import CertificateReloader, server_context

    cert, key = self_signed(tmp_path)
    ctx = server_context(cert, key)
    r = CertificateReloader(ctx, cert, key)
    assert r.check() is False  # unchanged
    other = tmp_path / "other"
    other.mkdir()
    other_cert, _ = self_signed(other)
    cert.write_bytes(other_cert.read_bytes())  # certificate renewed, key not yet
    assert r.check() is False and r.reloads == 0
