"""Connection settings for the Kubernetes API outside a pod: a kubeconfig file.

The reference picker (controller-runtime) takes `--kubeconfig`, then `$KUBECONFIG`, then the
in-cluster ServiceAccount. This reads the current context of one kubeconfig file: the cluster's
`server` (https), its CA (`certificate-authority` or `-data`, or `insecure-skip-tls-verify`), and
the user's bearer `token` or `tokenFile` (re-read on every request, like a projected token) or a
client certificate (`client-certificate`/`client-key` files or `-data`). Exec and auth-provider
plugins are refused with a message: the picker runs no external commands.
"""

from __future__ import annotations

import base64
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from ..errors import ConfigError


class KubeconfigError(ConfigError):
    """The kubeconfig cannot be used; the message names the file and the entry."""


@dataclass(frozen=True)
class Connection:
    host: str
    port: int
    ssl_context: ssl.SSLContext | None
    token: str | None = None
    token_file: Path | None = None


def _named(doc: dict[str, Any], section: str, name: str, path: Path, referrer: str) -> dict[str, Any]:
    for entry in doc.get(section) or []:
        if entry.get("name") == name:
            return entry.get(section[:-1]) or {}
    raise KubeconfigError(f"{path}: {referrer} names {section[:-1]} {name!r}, which is not defined")


def _file_or_data(entry: dict[str, Any], key: str, base: Path, scratch: list[Path]) -> Path | None:
    """The path of `key`, or of `key-data` decoded into a private temporary file."""
    if entry.get(key):
        p = Path(entry[key])
        return p if p.is_absolute() else base / p
    data = entry.get(f"{key}-data")
    if not data:
        return None
    f = tempfile.NamedTemporaryFile(prefix="picker-kubeconfig-", delete=False)
    f.write(base64.b64decode(data))
    f.close()
    scratch.append(Path(f.name))
    return Path(f.name)


def load_kubeconfig(path: Path, context: str | None = None) -> Connection:
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise KubeconfigError(f"{path}: cannot read kubeconfig: {e}") from None
    name = context or doc.get("current-context")
    if not name:
        raise KubeconfigError(f"{path}: no current-context")
    ctx = _named(doc, "contexts", name, path, "current-context" if not context else "the given context")
    cluster = _named(doc, "clusters", ctx.get("cluster", ""), path, f"context {name!r}")
    user = _named(doc, "users", ctx["user"], path, f"context {name!r}") if ctx.get("user") else {}

    url = urlsplit(cluster.get("server", ""))
    if url.scheme != "https" or not url.hostname:
        raise KubeconfigError(f"{path}: clusters[{ctx.get('cluster')!r}].server must be an https:// URL, "
                              f"not {cluster.get('server')!r}")
    for plugin in ("exec", "auth-provider"):
        if user.get(plugin):
            raise KubeconfigError(f"{path}: users[{ctx.get('user')!r}].{plugin} is not supported; "
                                  "use a token, tokenFile or client certificate")

    scratch: list[Path] = []
    try:
        base = path.parent
        ca = _file_or_data(cluster, "certificate-authority", base, scratch)
        ctx_ssl = ssl.create_default_context(cafile=str(ca) if ca else None)
        if cluster.get("insecure-skip-tls-verify"):
            ctx_ssl.check_hostname = False
            ctx_ssl.verify_mode = ssl.CERT_NONE
        cert = _file_or_data(user, "client-certificate", base, scratch)
        key = _file_or_data(user, "client-key", base, scratch)
        if cert and key:
            ctx_ssl.load_cert_chain(str(cert), str(key))
        elif cert or key:
            raise KubeconfigError(f"{path}: users[{ctx.get('user')!r}] needs both client-certificate and client-key")
    finally:
        for p in scratch:  # loaded into the context; nothing stays on disk
            p.unlink(missing_ok=True)

    token_file = user.get("tokenFile")
    return Connection(url.hostname, url.port or 443, ctx_ssl, token=user.get("token"),
                      token_file=(base / token_file if not Path(token_file).is_absolute() else Path(token_file))
                      if token_file else None)
