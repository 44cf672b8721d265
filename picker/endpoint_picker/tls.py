"""Secure serving of the ext_proc port, as the reference picker does by default.

Gateways (GKE's, Istio, kgateway) speak TLS to the endpoint picker and do not verify its
certificate (gateway-api-inference-extension #582), so without `--cert-path` a self-signed
certificate is made at startup. `--cert-path DIR` serves DIR/tls.crt and DIR/tls.key instead
(a mounted Secret), reloaded when they change (a renewed Secret reaches the pod as new files;
new connections get the new certificate). The health port stays plaintext: Kubernetes gRPC
probes cannot do TLS.
"""

from __future__ import annotations

import datetime
import os
import socket
import ssl
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .errors import ConfigError

CERT_FILE, KEY_FILE = "tls.crt", "tls.key"


def self_signed(directory: Path, valid_days: int = 3650) -> tuple[Path, Path]:
    """A P-256 key and a certificate for this host, written 0600 into `directory`."""
    key = ec.generate_private_key(ec.SECP256R1())
    host = socket.gethostname()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=valid_days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host), x509.DNSName("localhost")]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = directory / CERT_FILE, directory / KEY_FILE
    for path, data in ((cert_file, cert.public_bytes(serialization.Encoding.PEM)),
                       (key_file, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()))):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    return cert_file, key_file


def certificate_files(cert_path: str | None) -> tuple[Path, Path]:
    """(tls.crt, tls.key): from `cert_path`, else a fresh self-signed pair in a private temp dir."""
    if cert_path is None:
        return self_signed(Path(tempfile.mkdtemp(prefix="picker-tls-")))
    cert_file, key_file = Path(cert_path) / CERT_FILE, Path(cert_path) / KEY_FILE
    missing = [str(p) for p in (cert_file, key_file) if not p.is_file()]
    if missing:
        raise ConfigError(f"--cert-path {cert_path}: missing {', '.join(missing)} (expected {CERT_FILE} and {KEY_FILE})")
    return cert_file, key_file


def server_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """TLS 1.2+ server context offering HTTP/2 by ALPN (gRPC requires h2)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cert_file, key_file)
    except (ssl.SSLError, OSError) as e:
        raise ConfigError(f"cannot load the serving certificate {cert_file} / {key_file}: {e}") from None
    ctx.set_alpn_protocols(["h2"])
    return ctx


class CertificateReloader:
    """Reloads the certificate into `context` when either file changes (mtime or size; a
    Kubernetes Secret update swaps a symlink, which `stat` follows). A bad pair keeps the old one."""

    def __init__(self, context: ssl.SSLContext, cert_file: Path, key_file: Path) -> None:
        self.context, self.cert_file, self.key_file = context, cert_file, key_file
        self._seen = self._stamp()
        self.reloads = 0

    def _stamp(self) -> tuple[tuple[int, int], ...] | None:
        try:
            return tuple((s.st_mtime_ns, s.st_size) for s in (self.cert_file.stat(), self.key_file.stat()))
        except OSError:
            return None

    def check(self) -> bool:
        """Reload if the files changed; True when a new certificate is now served."""
        stamp = self._stamp()
        if stamp is None or stamp == self._seen:
            return False
        try:
            self.context.load_cert_chain(self.cert_file, self.key_file)
        except (ssl.SSLError, OSError):
            return False  # mid-update (certificate and key from different pairs): try again later
        self._seen = stamp
        self.reloads += 1
        return True
