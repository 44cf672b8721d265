"""Pure builders for the endpoint picker image: content hash of the build context and its tag."""

from __future__ import annotations

import fnmatch
import hashlib
from pathlib import Path

IMAGE_NAME = "endpoint-picker"
PLATFORM = "linux/amd64"
"""GKE nodes here are x86 (H100 hosts and the e2 system pool)."""

ALWAYS_IGNORED = ("__pycache__", "*.pyc", "*.pyo", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".venv", "*.egg-info", ".git")
"""Local by-products that never reach the image, whether or not .dockerignore lists them."""


def _ignore_patterns(context: Path) -> list[str]:
    patterns = list(ALWAYS_IGNORED)
    ignore_file = context / ".dockerignore"
    if ignore_file.exists():
        for line in ignore_file.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#") and not line.startswith("!"):
                patterns.append(line.rstrip("/"))
    return patterns


def _ignored(rel: str, patterns: list[str]) -> bool:
    parts = rel.split("/")
    for pattern in patterns:
        if fnmatch.fnmatch(rel, pattern) or any(fnmatch.fnmatch(p, pattern) for p in parts):
            return True
    return False


def context_hash(context: Path, length: int = 12) -> str:
    """sha256 over every file's relative path and bytes in the build context (sorted; files that
    .dockerignore or ALWAYS_IGNORED exclude are skipped). Same tree -> same tag, anywhere."""
    digest = hashlib.sha256()
    patterns = _ignore_patterns(context)
    files = sorted(p for p in context.rglob("*") if p.is_file())
    for path in files:
        rel = path.relative_to(context).as_posix()
        if _ignored(rel, patterns):
            continue
        digest.update(rel.encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:length]


def registry_host(region: str) -> str:
    return f"{region}-docker.pkg.dev"


def image_tag(repository_uri: str, content_hash: str) -> str:
    """<region>-docker.pkg.dev/<project>/<repo>/endpoint-picker:<hash>."""
    return f"{repository_uri}/{IMAGE_NAME}:{content_hash}"
