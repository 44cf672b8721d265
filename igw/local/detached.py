"""`python -m igw.local.detached`: the detached form of `igw up` (started by `igw up --detach`).

It runs the same Supervisor as a foreground `igw up`, in its own session, logging to
<state dir>/logs/supervisor.log; `igw up` waits for state.json to say ready (or failed).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .startup_checks import StartupError
from .supervisor import Options, run_supervisor


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="igw-local-detached")
    p.add_argument("--stack", required=True)
    p.add_argument("--state-dir", type=Path, required=True)
    p.add_argument("--manifests", type=Path, required=True)
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--time-scale", type=float, default=0.05)
    p.add_argument("--address-base", default="127.0.1.10")
    p.add_argument("--upstream-sim", default=None)
    p.add_argument("--replicas", default="vllm-sim", choices=("vllm-sim", "vllm-cpu"))
    a = p.parse_args(argv)
    opts = Options(stack=a.stack, state_dir=a.state_dir, port=a.port, time_scale=a.time_scale,
                   address_base=a.address_base, upstream_sim=a.upstream_sim, replicas=a.replicas)

    def progress(msg: str) -> None:
        print(msg, flush=True)

    return run_supervisor(opts, a.manifests, progress)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except StartupError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
