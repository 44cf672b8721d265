"""TLS for fake providers: a local CA per stack and a certificate per provider host.

The egress proxy verifies the provider's certificate against its CA bundle with the provider's
host as SNI and as the required subject name. Locally the fake provider serves a certificate for
that same host (``api.openai.com``) signed by a CA made for the stack, and the proxy's CA bundle
is that CA: the rendered TLS settings are exercised unchanged, only the trust anchor differs.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

CA_CERT, CA_KEY = "ca.pem", "ca-key.pem"


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def local_ca(directory: Path) -> tuple[Path, ec.EllipticCurvePrivateKey, x509.Certificate]:
    """The stack's CA (made once, reused across restarts of the stack)."""
    cert_path, key_path = directory / CA_CERT, directory / CA_KEY
    if cert_path.exists() and key_path.exists():
        key = serialization.load_pem_private_key(key_path.read_bytes(), None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return cert_path, key, x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "igw local provider CA")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hashes.SHA256()))
    _write(key_path, _pem_key(key))
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key, cert


def host_certificate(directory: Path, host: str) -> tuple[Path, Path]:
    """(certificate, key) for ``host`` signed by the stack's CA, written 0600 into ``directory``."""
    _, ca_key, ca_cert = local_ca(directory.parent)
    key = ec.generate_private_key(ec.SECP256R1())
    try:
        san: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        san = x509.DNSName(host)
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
            .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([san]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    cert_path, key_path = directory / "provider.crt", directory / "provider.key"
    _write(key_path, _pem_key(key))
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path
