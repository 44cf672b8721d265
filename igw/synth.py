"""`igw synth`: render a stack offline into resources.json, manifests/ and a preview-like tree."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from .engine import Synthesis, run_program
from .stackfile import ROOT, STACKS_DIR, read_stack, validate_stack

# Apply order for `kubectl apply -f manifests/`: definitions and namespaces before what uses them.
_KIND_ORDER = [
    "CustomResourceDefinition", "Namespace", "ServiceAccount", "Secret", "ConfigMap",
    "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
]


def _kind_rank(obj: dict[str, Any]) -> int:
    kind = obj.get("kind", "")
    return _KIND_ORDER.index(kind) if kind in _KIND_ORDER else len(_KIND_ORDER)


def manifest_filename(index: int, obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    name = str(meta.get("name", "unnamed")).replace("/", "-").replace(".", "-")
    parts = [f"{index:03d}", obj.get("kind", "Object").lower()] + ([ns] if ns else []) + [name]
    return "-".join(parts) + ".yaml"


def sorted_manifests(synthesis: Synthesis) -> list[dict[str, Any]]:
    objs = synthesis.kubernetes_objects()
    return sorted(
        objs,
        key=lambda o: (_kind_rank(o), o.get("kind", ""), (o.get("metadata") or {}).get("namespace", ""), (o.get("metadata") or {}).get("name", "")),
    )


def write_outputs(synthesis: Synthesis, out: Path) -> None:
    """resources.json (sorted by URN), manifests/NNN-kind-ns-name.yaml, outputs.json. Deterministic."""
    if out.exists():
        shutil.rmtree(out)
    (out / "manifests").mkdir(parents=True)
    resources = sorted((r.to_json() for r in synthesis.resources), key=lambda r: r["urn"])
    (out / "resources.json").write_text(json.dumps(resources, indent=2, sort_keys=True) + "\n")
    (out / "outputs.json").write_text(json.dumps(synthesis.outputs, indent=2, sort_keys=True) + "\n")
    for i, obj in enumerate(sorted_manifests(synthesis)):
        (out / "manifests" / manifest_filename(i, obj)).write_text(yaml.safe_dump(obj, sort_keys=False, width=120))


def tree(synthesis: Synthesis) -> str:
    """A `pulumi preview`-like tree: type and name per resource, then counts by type."""
    children: dict[str, list] = {}
    for r in synthesis.resources:
        children.setdefault(r.parent, []).append(r)
    lines = [f"{'Type':<60} Name", f"+   pulumi:pulumi:Stack{'':<39} inference-gateway-{synthesis.stack}"]

    def walk(parent: str, depth: int) -> None:
        for r in sorted(children.get(parent, []), key=lambda r: (r.type, r.name)):
            label = "    " * depth + "+-- " + r.type
            lines.append(f"+   {label:<56} {r.name}")
            walk(r.urn, depth + 1)

    walk("", 1)
    counts = Counter(r.type for r in synthesis.resources)
    lines.append("")
    lines.append(f"Resources: {len(synthesis.resources)} to create")
    for type_, n in sorted(counts.items()):
        lines.append(f"    {n:>4} {type_}")
    return "\n".join(lines)


def synthesize(stack: str, out: Path | None = None, stacks_dir: Path | None = None) -> tuple[Synthesis, Path]:
    stacks_dir = stacks_dir or STACKS_DIR
    validate_stack(stack, stacks_dir)  # config errors before any resource, with our wording
    synthesis = run_program(stack, read_stack(stack, stacks_dir))
    out = out or ROOT / "build" / stack
    write_outputs(synthesis, out)
    return synthesis, out
