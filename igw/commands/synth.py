"""igw synth --stack NAME [--out DIR]"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="render a stack offline (mock engine): resources.json, manifests/, a preview tree")
    p.add_argument("--stack", required=True)
    p.add_argument("--stacks-dir", type=Path, default=None, help="where Pulumi.<stack>.yaml files live (default stacks/)")
    p.add_argument("--out", type=Path, default=None, help="output directory (default build/<stack>)")
    p.add_argument("--quiet", action="store_true", help="do not print the tree")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..synth import synthesize, tree

    synthesis, out = synthesize(args.stack, args.out, stacks_dir=args.stacks_dir)
    if not args.quiet:
        print(tree(synthesis))
    manifests = len(list((out / "manifests").glob("*.yaml")))
    print(f"\nWrote {out}/resources.json ({len(synthesis.resources)} resources) and {manifests} manifests in {out}/manifests/")
    return 0
