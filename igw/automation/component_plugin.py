"""The package's component provider (provider/__main__.py) as a plugin the engine starts directly.

With the Python language host, `pulumi package add ./provider` makes the engine run
PulumiPlugin.yaml through that host. The host cannot be built here (the Go module proxy refuses
it), so tests give the engine what the host would start: an executable named
`pulumi-resource-inference-gateway` that runs provider/__main__.py with this environment's
Python. The engine speaks the same gRPC protocol to it (GetSchema, Construct...).
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from components.package import PACKAGE

ROOT = Path(__file__).resolve().parents[2]
ENTRY_POINT = ROOT / "provider" / "__main__.py"


def write_component_plugin(folder: Path, python: str = sys.executable) -> Path:
    """Write `pulumi-resource-inference-gateway` into `folder` (a project plugin path); returns it."""
    folder.mkdir(parents=True, exist_ok=True)
    plugin = folder / f"pulumi-resource-{PACKAGE}"
    plugin.write_text(f"#!/bin/sh\nexec {shlex.quote(python)} {shlex.quote(str(ENTRY_POINT))} \"$@\"\n")
    plugin.chmod(0o755)
    return folder
