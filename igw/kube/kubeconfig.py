"""Kubeconfig files for one identity on one cluster (what kubectl, client-go, the Pulumi
Kubernetes provider and the picker's `--kubeconfig` read)."""

from __future__ import annotations

from pathlib import Path

import yaml


def kubeconfig(server: str, ca_file: Path, *, user: str, token: str | None = None,
               token_file: Path | None = None, cluster: str = "igw-local") -> dict:
    """A kubeconfig with one cluster, one user authenticated by a bearer token (inline or a file
    re-read on every request), and one current context named `<user>@<cluster>`."""
    if (token is None) == (token_file is None):
        raise ValueError("give exactly one of token or token_file")
    credentials = {"token": token} if token is not None else {"tokenFile": str(token_file)}
    context = f"{user}@{cluster}"
    return {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": cluster, "cluster": {"server": server, "certificate-authority": str(ca_file)}}],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": context, "context": {"cluster": cluster, "user": user}}],
        "current-context": context,
    }


def write_kubeconfig(path: Path, server: str, ca_file: Path, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(kubeconfig(server, ca_file, **kw), sort_keys=False))
    path.chmod(0o600)
    return path
