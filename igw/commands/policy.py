"""igw policy --stack NAME | --from DIR [--config FILE] [--environment ENV]"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "policy",
        help="run the policy pack offline over a stack's synth output (exit 1 on mandatory violations)",
        description="Render the stack with the mock engine (or read --from DIR) and run the policies of "
        "policy/ over it, as `pulumi preview --policy-pack policy` would.",
    )
    p.add_argument("--stack", help="render this stack first (build/<stack>); also gives --from its environment")
    p.add_argument("--from", dest="from_dir", type=Path, default=None, help="check an existing `igw synth` output dir")
    p.add_argument("--config", type=Path, default=None, help="policy config (JSON/YAML, the --policy-pack-config format)")
    p.add_argument("--environment", default=None, help="override the stack's environment (e.g. production)")
    p.add_argument("--out", type=Path, default=None, help="where to render (default build/<stack>)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from ..policy_checks import (
        PolicyConfigError,
        check,
        check_stack,
        descriptions,
        format_report,
        load_config,
        load_resources,
        resources_of,
    )

    if not args.stack and not args.from_dir:
        print("error: give --stack NAME (render and check) or --from DIR (check an igw synth output)", file=sys.stderr)
        return 2
    try:
        config = load_config(args.config)
    except (OSError, PolicyConfigError) as err:
        print(f"error: policy config: {err}", file=sys.stderr)
        return 2
    if args.from_dir:
        try:
            resources = load_resources(args.from_dir)
        except (OSError, ValueError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        stack = args.stack or args.from_dir.name
    else:
        from ..synth import synthesize

        synthesis, _ = synthesize(args.stack, args.out)
        resources, stack = resources_of(synthesis), args.stack
    try:
        if args.stack:
            report = check_stack(args.stack, resources, config, args.environment)
        else:
            report = check(resources, stack=stack, environment=args.environment or "development", config=config)
    except PolicyConfigError as err:
        print(f"error: policy config {args.config}: {err}", file=sys.stderr)
        return 2
    print(format_report(report, descriptions()))
    return 0 if report.ok else 1
