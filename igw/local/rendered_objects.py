"""The rendered Kubernetes objects a LocalPlan is read from, and how the plan names them (pure).

`load_manifests` reads a render's manifests directory (YAML and JSON, `List` items flattened);
`object_meta` gives an object's (namespace, name) with Kubernetes' `default` namespace,
`object_ref` its `Kind namespace/name` label for warnings and the skipped list;
`duration_seconds` reads Gateway API durations. `Objects` is the index the plan looks objects up
in, by (kind, namespace, name). `PlanError` says the objects cannot run locally.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

Objects = dict[tuple[str, str, str], dict[str, Any]]
"""Rendered objects by (kind, namespace, name)."""


class PlanError(ValueError):
    """The rendered objects cannot be run locally (the message says which object and why)."""


def load_manifests(directory: Path) -> list[dict[str, Any]]:
    objs: list[dict[str, Any]] = []
    for f in sorted(Path(directory).rglob("*")):
        if f.suffix in (".yaml", ".yml", ".json") and f.is_file():
            for doc in yaml.safe_load_all(f.read_text()):
                if isinstance(doc, dict) and doc.get("kind"):
                    if doc["kind"] == "List":
                        objs.extend(i for i in doc.get("items") or [] if isinstance(i, dict))
                    else:
                        objs.append(doc)
    return objs


def object_meta(o: dict[str, Any]) -> tuple[str, str]:
    m = o.get("metadata") or {}
    return m.get("namespace") or "default", m.get("name", "")


def object_ref(o: dict[str, Any]) -> str:
    m = o.get("metadata") or {}
    ns = m.get("namespace")
    return f"{o.get('kind')} {ns + '/' if ns else ''}{m.get('name', '')}"


def duration_seconds(v: Any) -> float | None:
    """Gateway API duration ('300s', '1m', '1h30m', '500ms') → seconds."""
    if v is None:
        return None
    s, total, num = str(v), 0.0, ""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    i = 0
    while i < len(s):
        c = s[i]
        if c.isdigit() or c == ".":
            num += c
            i += 1
            continue
        unit = "ms" if s[i:i + 2] == "ms" else c
        if unit not in units or not num:
            raise PlanError(f"bad duration {v!r}")
        total += float(num) * units[unit]
        num = ""
        i += len(unit)
    if num:
        raise PlanError(f"bad duration {v!r} (missing unit)")
    return total
