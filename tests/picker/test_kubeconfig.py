"""The picker's --kubeconfig reader: what it takes from the current context, and the exact
refusals (tests/real_k8s runs the picker with one against a real API server)."""

from __future__ import annotations

import base64
import ssl
from pathlib import Path

import pytest
import yaml

from endpoint_picker.discovery.kubeconfig import KubeconfigError, load_kubeconfig
from endpoint_picker.tls import self_signed


def write(path: Path, cluster: dict, user: dict, *, current: str = "ctx") -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": current,
        "clusters": [{"name": "c", "cluster": cluster}], "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
    }))
    return path


@pytest.fixture
def ca(tmp_path: Path) -> Path:
    (tmp_path / "ca").mkdir()
    cert, _ = self_signed(tmp_path / "ca")
    return cert


def test_token_file_and_relative_paths(tmp_path: Path, ca: Path) -> None:
    (tmp_path / "token").write_text("t0k3n\n")
    c = load_kubeconfig(write(tmp_path / "kc.yaml", {"server": "https://10.0.0.1:6443", "certificate-authority": str(ca)},
                              {"tokenFile": "token"}))
    assert (c.host, c.port, c.token, c.token_file) == ("10.0.0.1", 6443, None, tmp_path / "token")
    assert c.ssl_context.verify_mode == ssl.CERT_REQUIRED and c.ssl_context.check_hostname


def test_inline_token_ca_data_default_port(tmp_path: Path, ca: Path) -> None:
    data = base64.b64encode(ca.read_bytes()).decode()
    c = load_kubeconfig(write(tmp_path / "kc.yaml", {"server": "https://api.example", "certificate-authority-data": data},
                              {"token": "abc"}))
    assert (c.host, c.port, c.token) == ("api.example", 443, "abc")
    assert not list(tmp_path.glob("picker-kubeconfig-*"))  # decoded CA not left on disk


def test_insecure_skip_tls_verify(tmp_path: Path) -> None:
    c = load_kubeconfig(write(tmp_path / "kc.yaml", {"server": "https://h:1", "insecure-skip-tls-verify": True},
                              {"token": "abc"}))
    assert c.ssl_context.verify_mode == ssl.CERT_NONE and not c.ssl_context.check_hostname


@pytest.mark.parametrize("cluster, user, message", [
    ({"server": "http://h:80"}, {"token": "x"}, "clusters['c'].server must be an https:// URL, not 'http://h:80'"),
    ({"server": "https://h:1"}, {"exec": {"command": "gke-gcloud-auth-plugin"}},
     "users['u'].exec is not supported; use a token, tokenFile or client certificate"),
    ({"server": "https://h:1"}, {"client-certificate": "/x.crt"}, "users['u'] needs both client-certificate and client-key"),
])
def test_refusals(tmp_path: Path, cluster: dict, user: dict, message: str) -> None:
    path = write(tmp_path / "kc.yaml", {"insecure-skip-tls-verify": True, **cluster}, user)
    with pytest.raises(KubeconfigError) as err:
        load_kubeconfig(path)
    assert str(err.value) == f"{path}: {message}"


def test_current_context_must_exist(tmp_path: Path) -> None:
    path = write(tmp_path / "kc.yaml", {"server": "https://h:1"}, {"token": "x"}, current="other")
    with pytest.raises(KubeconfigError) as err:
        load_kubeconfig(path)
    assert str(err.value) == f"{path}: current-context names context 'other', which is not defined"
