"""igw validate --stack NAME: config only, no program run."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="validate a stack's config (no resources)")
    p.add_argument("--stack", required=True)
    p.add_argument("--stacks-dir", type=Path, default=None, help="where Pulumi.<stack>.yaml files live (default stacks/)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..stackfile import STACKS_DIR, validate_stack

    cfg = validate_stack(args.stack, args.stacks_dir or STACKS_DIR)
    print(
        f"stack {args.stack}: config is valid ({len(cfg.node_pools)} node pools, {len(cfg.model_servers)} model servers, "
        f"{len(cfg.pools)} pools, {len(cfg.models)} served models, {len(cfg.gateways)} gateways)"
    )
    return 0
