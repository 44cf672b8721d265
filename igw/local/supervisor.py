"""`python -m igw.local.supervisor`: the detached form of `igw up` (started by `igw up --detach`).

It runs the same Supervisor as a foreground `igw up`, in its own session, logging to
<state dir>/logs/supervisor.log; `igw up` waits for state.json to say ready (or failed).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .runner import Options, StartupError, Supervisor


def run_supervisor(opts: Options, manifests: Path, progress=print, on_ready=None) -> int:
    sup = Supervisor(opts, progress=progress)
    sup.install_signal_handlers()
    try:
        sup.start(manifests)
    except BaseException as e:  # startup failure: nothing stays behind
        sup.error = str(e) if not isinstance(e, KeyboardInterrupt) else "interrupted"
        progress(f"error: {sup.error}")
        sup.stop_all()
        return 1
    if on_ready is not None:
        on_ready(sup.state())
    try:
        sup.serve_forever()
    finally:
        progress("stopping: envoy, pickers, replicas ...")
        t = time.monotonic()
        sup.stop_all()
        progress(f"stopped in {time.monotonic() - t:.1f}s")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="igw-local-supervisor")
    p.add_argument("--stack", required=True)
    p.add_argument("--state-dir", type=Path, required=True)
    p.add_argument("--manifests", type=Path, required=True)
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--time-scale", type=float, default=0.05)
    p.add_argument("--address-base", default="127.0.1.10")
    p.add_argument("--upstream-sim", default=None)
    a = p.parse_args(argv)
    opts = Options(stack=a.stack, state_dir=a.state_dir, port=a.port, time_scale=a.time_scale,
                   address_base=a.address_base, upstream_sim=a.upstream_sim)

    def progress(msg: str) -> None:
        print(msg, flush=True)

    return run_supervisor(opts, a.manifests, progress)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except StartupError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
