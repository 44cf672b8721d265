"""The igw command line. Each subcommand lives in igw/commands/<name>.py."""

from __future__ import annotations

import argparse
import importlib
import sys

from .commands import COMMANDS


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="igw", description="inference-gateway: render, check and run the platform")
    sub = p.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"igw.commands.{name}").register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    from components.config import ConfigError

    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except ConfigError as err:
        print(f"error: invalid stack config ({getattr(args, 'stack', '?')}):", file=sys.stderr)
        for line in err.problems:
            print(f"  {line}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
