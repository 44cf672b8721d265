"""The package's layers import downwards only: catalog <- config <- builders <- components.

A cycle between config and builders once made every change to either a puzzle; this reads each
module's imports (ast, nothing executed) and names the offending line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# layer -> the layers it may import
ALLOWED = {
    "catalog": {"catalog"},
    "config": {"catalog", "config"},
    "builders": {"catalog", "config", "builders"},
}


def _layer_imports(path: Path, package: tuple[str, ...] | None = None) -> list[tuple[int, str]]:
    """(line, layer) for every import of a components layer in one module."""
    tree = ast.parse(path.read_text(), str(path))
    package = package or path.relative_to(ROOT).parts[:-1]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package[: len(package) - node.level + 1])
                target = base + (node.module.split(".") if node.module else [])
            else:
                target = (node.module or "").split(".")
            names = [target] if len(target) >= 2 else [target + [a.name] for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name.split(".") for a in node.names]
        else:
            continue
        for t in names:
            if len(t) >= 2 and t[0] == "components" and t[1] in ALLOWED:
                out.append((node.lineno, t[1]))
    return out


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layer_imports_only_lower_layers(layer):
    bad = [
        f"{path.relative_to(ROOT)}:{line} imports components.{target}"
        for path in sorted((ROOT / "components" / layer).glob("*.py"))
        for line, target in _layer_imports(path)
        if target not in ALLOWED[layer]
    ]
    assert not bad, "\n".join(bad)


def test_the_check_sees_a_violation(tmp_path):
    """The scanner itself: relative and absolute imports of builders from config are reported."""
    fake = tmp_path / "probe.py"
    fake.write_text("import json\nfrom ..builders.routes import MAX_RULES\nfrom components import builders\n")
    assert _layer_imports(fake, ("components", "config")) == [(2, "builders"), (3, "builders")]
