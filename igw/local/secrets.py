"""The stack's API keys for `igw up`, from a local secrets source instead of a Pulumi secret.

On GKE a pool with `pools[].picker.api_keys` mounts the Secret made from the secret config value
`apiKeys` (a YAML/JSON mapping `sha256(key) hex -> user`); an offline render masks it, so locally
the same mapping comes from `igw up --api-keys-file FILE` or the environment variable
`IGW_API_KEYS` (the mapping itself). It is checked with the picker's own loader and written to
`<state dir>/api-keys.yaml` (mode 0600), which every picker of such a pool gets as
`--api-keys-file`: requests without a known key get 401 and each key's user is its rate-limit
identity, end to end. A pool that requires keys and no keys given is an error before anything
starts: the local gateway never serves a keyed pool without authentication.
"""

from __future__ import annotations

import os
from pathlib import Path

API_KEYS_ENV = "IGW_API_KEYS"
API_KEYS_FILE = "api-keys.yaml"


class SecretsError(ValueError):
    """The local secrets are missing or invalid (the message says what to do)."""


def api_keys_path(state_dir: Path) -> Path:
    return state_dir / API_KEYS_FILE


def read_api_keys(path: Path | None) -> bytes | None:
    """The mapping from --api-keys-file, else from IGW_API_KEYS, else None."""
    if path is not None:
        try:
            return path.read_bytes()
        except OSError as e:
            raise SecretsError(f"--api-keys-file {path}: {e.strerror}") from None
    value = os.environ.get(API_KEYS_ENV)
    return value.encode() if value else None


def install_api_keys(state_dir: Path, data: bytes) -> Path:
    """Validate the mapping as the picker will read it, then write it for the pickers."""
    from endpoint_picker.admission import ApiKeys
    from endpoint_picker.errors import ConfigError

    target = api_keys_path(state_dir)
    tmp = target.with_name("." + target.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    try:
        keys = ApiKeys.load(tmp)
    except ConfigError as e:
        tmp.unlink()
        raise SecretsError(f"API keys: {str(e).replace(str(tmp), 'the given mapping')}") from None
    if not keys.hashes:
        tmp.unlink()
        raise SecretsError("API keys: the mapping is empty; give at least one `<sha256 hex of the key>: <user>`")
    os.replace(tmp, target)
    return target


def missing_keys(pools_needing_keys: list[str], state_dir: Path) -> str | None:
    """Why the stack cannot run without keys, or None."""
    if not pools_needing_keys or api_keys_path(state_dir).exists():
        return None
    return (f"pool {', '.join(repr(p) for p in pools_needing_keys)} requires API keys (pools[].picker.api_keys); give "
            f"them with --api-keys-file FILE or {API_KEYS_ENV}: a YAML/JSON mapping of sha256(key) hex -> user, the "
            "format of the secret config value apiKeys")
