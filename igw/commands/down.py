"""igw down --stack local: stop a local stack started with `igw up` (--detach or in another terminal)."""

from __future__ import annotations

import argparse
import os
import signal
import time
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("down", help="stop a local stack started by `igw up`")
    p.add_argument("--stack", required=True)
    p.add_argument("--state-dir", type=Path, default=None, help="default .igw/local/<stack>")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for a clean stop before killing")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..local.state import alive, default_state_dir, kill_recorded, read_state, supervisor_alive

    state_dir = (args.state_dir or default_state_dir(args.stack)).resolve()
    state = read_state(state_dir)
    if state is None:
        print(f"igw down: no local stack '{args.stack}' ({state_dir} has no state)")
        return 0
    t = time.monotonic()
    pid = state.get("supervisor_pid")
    if supervisor_alive(state):
        print(f"igw down: stopping local stack '{args.stack}' (supervisor pid {pid}) ...", flush=True)
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + args.timeout
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if alive(pid):
            print(f"  supervisor did not stop within {args.timeout:.0f}s; killing it")
            os.kill(pid, signal.SIGKILL)
    # Whatever the supervisor left (or everything, if it was already gone).
    leftovers = kill_recorded(read_state(state_dir) or state)
    if leftovers:
        print(f"  killed leftover processes: {', '.join(leftovers)}")
    from ..local.secrets import api_keys_path

    api_keys_path(state_dir).unlink(missing_ok=True)  # the stack's API keys leave with it
    n = len(state.get("processes") or {})
    print(f"igw down: local stack '{args.stack}' stopped ({n} processes) in {time.monotonic() - t:.1f}s")
    return 0
