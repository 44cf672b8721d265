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

    from components.config.exposure import exposure_report

    cfg = validate_stack(args.stack, args.stacks_dir or STACKS_DIR)
    print(
        f"stack {args.stack}: config is valid ({len(cfg.node_pools)} node pools, {len(cfg.model_servers)} model servers, "
        f"{len(cfg.pools)} pools, {len(cfg.models)} served models, {len(cfg.gateways)} gateways)"
    )
    report = exposure_report(cfg)
    if report:
        print("exposed through gateways (client API paths only; everything else answers 404):")
        for line in report:
            print(f"  {line}")
    return 0
