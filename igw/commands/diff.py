"""igw diff BASE_DIR HEAD_DIR [--out FILE] [--title TEXT]"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "diff",
        help="markdown diff of two `igw synth` outputs (resources added/removed/changed), for PR comments",
    )
    p.add_argument("base", type=Path, help="synth output of the base (e.g. build/base/prod)")
    p.add_argument("head", type=Path, help="synth output of the head (e.g. build/prod)")
    p.add_argument("--out", type=Path, default=None, help="write the markdown here instead of stdout")
    p.add_argument("--title", default=None, help="heading of the markdown (default: igw diff: BASE → HEAD)")
    p.add_argument("--max-fields", type=int, default=None, help="changed fields listed per resource (default 40)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from ..diff import MAX_FIELDS, diff_dirs, to_markdown

    try:
        d = diff_dirs(args.base, args.head)
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    text = to_markdown(d, title=args.title or f"igw diff: {args.base} → {args.head}", max_fields=args.max_fields or MAX_FIELDS)
    refused = conversions(args.base, args.head)
    if refused:
        head = "**Refused** (seed 004: an endpoint cannot be converted to or from an external model):\n\n"
        text = head + "".join(f"- {line}\n" for line in refused) + "\n" + text
        print("error: " + head.strip("*\n :").replace("**", "") + "\n" + "\n".join(f"  {line}" for line in refused), file=sys.stderr)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        print(f"Wrote {args.out} ({len(d.added)} to add, {len(d.changed)} to change, {len(d.removed)} to delete)")
    else:
        sys.stdout.write(text)
    return 1 if refused else 0


def conversions(base: Path, head: Path) -> list[str]:
    """Endpoints the head render converts to or from an external model (the PR gate before
    `pulumi up`; locally `igw up` refuses the same)."""
    from components.config.external import conversion_problems

    from ..endpoint_state import endpoint_kinds
    from ..local.rendered_objects import load_manifests

    if not (base / "manifests").is_dir() or not (head / "manifests").is_dir():
        return []
    return conversion_problems(endpoint_kinds(load_manifests(base / "manifests")), endpoint_kinds(load_manifests(head / "manifests")))
