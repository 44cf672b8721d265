"""Names derived from the stack config: one rule each, used by the config (to reject a name
before anything is created) and by the builders (to render it)."""

from __future__ import annotations

import hashlib
import re

_NOT_DNS = re.compile(r"[^a-z0-9.-]+")
_MAX_NAME = 63


def dns_name(model: str) -> str:
    """A DNS-safe object name for a model name: ``meta-llama/Llama-3.1-8B-Instruct`` ->
    ``meta-llama-llama-3.1-8b-instruct``. Long names keep a hash suffix so they stay unique."""
    name = _NOT_DNS.sub("-", model.lower())
    name = re.sub(r"-{2,}", "-", name)
    name = re.sub(r"\.{2,}", ".", name)
    name = re.sub(r"[.-]*\.[.-]*", ".", name)  # no '-.' / '.-' (invalid label boundaries)
    name = name.strip(".-")
    if len(name) > _MAX_NAME:
        digest = hashlib.sha256(model.encode()).hexdigest()[:8]
        name = name[: _MAX_NAME - 9].rstrip(".-") + "-" + digest
    return name or "model-" + hashlib.sha256(model.encode()).hexdigest()[:8]


_SA_ID = re.compile(r"^[a-z][-a-z0-9]{4,28}[a-z0-9]$")


def node_service_account_id(name_prefix: str) -> str:
    """<name_prefix>-nodes, a valid service account id (6-30 chars) or ValueError."""
    account_id = f"{name_prefix}-nodes"
    if not _SA_ID.match(account_id):
        raise ValueError(
            f"{name_prefix!r} makes the node service account id {account_id!r}, which is not a valid "
            "service account id; use a name_prefix of 1-24 lowercase letters, digits or '-', starting with a letter"
        )
    return account_id


def template_name(project: str, region: str, template_id: str) -> str:
    return f"projects/{project}/locations/{region}/templates/{template_id}"
