"""The local supervisor: runs a LocalPlan as processes and keeps it running.

One supervisor per stack owns every child: one replica process per model-server pod (own loopback
address, like a pod IP; see replicas.py), the pickers of each InferencePool (as many as its picker
Deployment's replicas; pickers.py), one Envoy. The supervisor stops them on SIGTERM/SIGINT/SIGHUP,
on a startup failure and at exit.

Before starting anything it checks the ports the plan needs, then waits for each tier to be
ready (startup_checks.py). While running it acts as the kubelet and the controllers would: probes
each replica's readinessProbe, publishes ready pods to the pickers (endpoints file) and to Envoy
(EDS file; publish.py), probes the pickers as their rendered probes say (watchdog.py: a picker
failing readiness leaves Envoy's picker cluster, one failing liveness is restarted), restarts
crashed processes with backoff, and on SIGUSR1 applies a new render (rollout.py).
"""

from __future__ import annotations

import atexit
import dataclasses
import os
import signal
import time
from pathlib import Path
from typing import Any, Callable

import httpx
from endpoint_picker.envoy_bootstrap import envoy_binary

from .autoscaler import LocalAutoscaler
from .envoy import EnvoyFiles
from .envoy_names import listener_name
from .pickers import start_group, wait_group_ready
from .plan import LocalPlan, build_plan
from .plan_skipped import cloud_resources
from .process import Proc, free_port, port_open
from .publish import install_manifests, picker_endpoints, ready_endpoints, write_pods_file
from .rendered_objects import load_manifests
from .replicas import replica_launcher
from .report import describe_route
from .startup_checks import StartupError, check_ports, wait_ready
from .state import write_state
from .watchdog import PickerWatchdog

RESTART_BACKOFF = (2.0, 4.0, 8.0, 16.0, 30.0)
RELOAD_SIGNAL = signal.SIGUSR1
CANCEL_SIGNAL = signal.SIGUSR2
"""`igw up` cancelling the reload in progress (Ctrl-C, `igw up --cancel`; igw/local/safe_update.py)."""


@dataclasses.dataclass
class Options:
    stack: str
    state_dir: Path
    port: int = 8080
    time_scale: float = 0.05
    address_base: str = "127.0.1.10"
    listen_address: str = "127.0.0.1"
    startup_timeout: float = 60.0
    upstream_sim: str | None = None
    replicas: str = "vllm-sim"   # what vLLM pods run as: vllm-sim | vllm-cpu (a stack's igw-local:replicas)


class Supervisor:
    def __init__(self, opts: Options, progress: Callable[[str], None] = print) -> None:
        self.o = opts
        self.progress = progress
        self.dir = opts.state_dir
        self.logs = self.dir / "logs"
        self.envoy_files = EnvoyFiles(self.dir / "envoy")
        self.plan: LocalPlan | None = None
        self.sims: dict[str, Proc] = {}
        self.pickers: dict[str, list[Proc]] = {}   # pool -> its pickers (one leads when several)
        self.envoy: Proc | None = None
        self.retiring: list[Proc] = []    # replaced pickers draining their open streams
        self.admin_port = free_port()
        self.generation = 0
        self.status = "starting"
        self.error: str | None = None
        self.last_reload: dict[str, Any] | None = None
        self._stop = False
        self._reload = False
        self.cancel_requested = False
        self._stopped = False
        self.http = httpx.Client(timeout=1.0)
        self.replicas = replica_launcher(self.http, opts.time_scale, opts.upstream_sim, opts.replicas)
        self.started_at = time.time()
        self.watchdog = PickerWatchdog(progress)
        self.autoscaler = LocalAutoscaler(self)  # the rendered ScaledObjects' policy (autoscaler.py)

    # ------------------------------------------------------------------ state
    def state(self) -> dict[str, Any]:
        plan = self.plan
        procs = {p.name: p.to_json() for p in self.all_procs()}
        return {
            "stack": self.o.stack, "status": self.status, "error": self.error,
            "supervisor_pid": os.getpid(), "generation": self.generation, "started_at": self.started_at,
            "gateway_url": f"http://{self.o.listen_address}:{self.o.port}",
            "listeners": [{"gateway": l.gateway, "name": l.name, "port": l.port, "local_port": l.local_port,
                           "routes": [describe_route(e) for e in l.routes]}
                          for l in plan.listeners] if plan else [],
            "admin_port": self.admin_port, "time_scale": self.o.time_scale,
            "state_dir": str(self.dir), "manifests_dir": str(self.dir / "manifests"),
            "processes": procs, "last_reload": self.last_reload,
            "pools": {name: {"failure_mode": p.failure_mode, "timeout_s": p.timeout_s,
                             "message_timeout_s": p.message_timeout_s,
                             "picker": self.pickers[name][0].name if self.pickers.get(name) else None,
                             "pickers": [q.name for q in self.pickers.get(name, [])],
                             "replicas": [r.name for r in p.replicas], "app_protocol": p.app_protocol}
                      for name, p in plan.pools.items()} if plan else {},
            "models": [dataclasses.asdict(m) for m in plan.models] if plan else [],
            "skipped": plan.skipped if plan else [],
            "warnings": plan.warnings if plan else [],
            "replica_kind": self.replicas.kind,
            "upstream_sim": self.o.upstream_sim,
            "autoscaling": self.autoscaler.state(),
        }

    def save(self) -> None:
        write_state(self.dir, self.state())

    def all_procs(self) -> list[Proc]:
        return (list(self.sims.values()) + self.picker_procs() + self.retiring + self.autoscaler.procs()
                + ([self.envoy] if self.envoy else []))

    def picker_procs(self) -> list[Proc]:
        return [p for group in self.pickers.values() for p in group]

    # ------------------------------------------------------------------ publishing (publish.py)
    def publish_endpoints(self) -> None:
        """Ready pods → each picker's endpoints file and Envoy's EDS (both atomic replaces)."""
        assert self.plan is not None
        for pool in self.plan.pools.values():
            self.envoy_files.write_endpoints(pool.name, write_pods_file(self.dir, pool, self.sims))
            if self.envoy is not None:  # before Envoy starts, write_config writes them
                self.envoy_files.write_picker_endpoints(pool.name, picker_endpoints(self.pickers).get(pool.name, []))

    def wait_pickers_ready(self, groups: list[list[Proc]]) -> None:
        deadline = time.monotonic() + self.o.startup_timeout
        for group in groups:
            problem = wait_group_ready(group, deadline, lambda: self._stop)
            if problem:
                raise StartupError(problem)

    # ------------------------------------------------------------------ waiting
    def wait_ready(self, what: str, procs: list[Proc], check: Callable[[Proc], bool], timeout: float) -> None:
        """startup_checks.wait_ready, ended early by a stop or an `igw up --cancel`."""
        wait_ready(what, procs, check, timeout,
                   lambda: "interrupted" if self._stop else "cancelled" if self.cancel_requested else None)

    def replica_timeout(self) -> float:
        """How long model-server pods may take to become ready: the --timeout, or longer for a kind
        of replica that needs it (real vLLM)."""
        return max(self.o.startup_timeout, getattr(self.replicas, "startup_timeout_s", 0.0))

    def _envoy_ready(self, _: Proc) -> bool:
        """Envoy is LIVE and every listener from LDS is bound (a failed bind drops the listener)."""
        try:
            if self.http.get(f"http://127.0.0.1:{self.admin_port}/ready").status_code != 200:
                return False
            active = self.http.get(f"http://127.0.0.1:{self.admin_port}/listeners?format=json").json()
        except (httpx.HTTPError, ValueError):
            return False
        names = {l.get("name") for l in active.get("listener_statuses") or []}
        return self.envoy_applied() and all(listener_name(l) in names and port_open(self.o.listen_address, l.local_port)
                                            for l in (self.plan.listeners if self.plan else []))

    def envoy_applied(self) -> bool:
        try:
            dump = self.http.get(f"http://127.0.0.1:{self.admin_port}/config_dump").json()
        except (httpx.HTTPError, ValueError):
            return False
        return self.envoy_files.applied(dump)

    def wait_envoy_applied(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.envoy_applied():
            if time.monotonic() > deadline:
                assert self.envoy is not None
                raise StartupError("Envoy did not accept the new configuration; last lines of "
                                   f"{self.envoy.log}:\n{self.envoy.tail(8)}")
            time.sleep(0.05)

    # ------------------------------------------------------------------ start
    def start(self, manifests: Path) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        atexit.register(self.stop_all)
        self.save()
        t0 = time.monotonic()
        plan = build_plan(load_manifests(manifests), port=self.o.port, address_base=self.o.address_base)
        self.autoscaler.adopt(plan)  # autoscaled Deployments start at their min_replicas
        check_ports(plan, self.o.listen_address)
        plan.skipped += cloud_resources(manifests.resolve().parent / "resources.json")
        self.plan = plan
        install_manifests(self.dir, manifests, self.generation)

        # 1. model-server replicas
        t = time.monotonic()
        for r in plan.replicas:
            self.sims[r.name] = p = self.replicas.proc(r, self.logs)
            p.start()
        self.save()
        addrs = ", ".join(f"{r.address}:{r.ports[0]}" for r in plan.replicas)
        how = "real vLLM, a few minutes" if self.o.replicas == "vllm-cpu" else f"time scale {self.o.time_scale:g}"
        self.progress(f"  replicas  {len(plan.replicas)} x {self.replicas.kind} ({how}) on {addrs} ...")
        self.wait_ready("replicas", list(self.sims.values()), self.replicas.ready, self.replica_timeout())
        self.publish_endpoints()
        self.progress(f"            ready in {time.monotonic() - t:.1f}s")

        # 2. the pickers of each pool
        t = time.monotonic()
        for pool in plan.pools.values():
            self.pickers[pool.name] = start_group(self.dir, pool)
        self.save()
        names = ", ".join(f"{p.name} ({p.meta['failure_mode']})" for p in self.picker_procs())
        self.progress(f"  pickers   {names} ...")
        self.wait_pickers_ready(list(self.pickers.values()))
        self.progress(f"            ready in {time.monotonic() - t:.1f}s")

        # 3. Envoy
        t = time.monotonic()
        self.envoy_files.write_config(plan, picker_endpoints(self.pickers), ready_endpoints(plan, self.sims), self.o.listen_address,
                                      self.logs / "access.log")
        boot = self.envoy_files.write_bootstrap(self.admin_port, f"igw-local-{self.o.stack}")
        self.envoy = Proc("envoy", "envoy", [envoy_binary(), "-c", str(boot), "--disable-hot-restart",
                                              "-l", "warning", "--concurrency", "2",
                                              "--file-flush-interval-msec", "200"],
                          self.logs / "envoy.log")
        self.envoy.meta = {"admin_port": self.admin_port, "bootstrap": str(boot)}
        self.envoy.start()
        self.save()
        ports = ", ".join(f":{l.local_port} (gateway {l.gateway} {l.name}:{l.port})" for l in plan.listeners)
        self.progress(f"  envoy     listeners {ports} ...")
        self.wait_ready("envoy", [self.envoy], self._envoy_ready, self.o.startup_timeout)
        self.progress(f"            ready in {time.monotonic() - t:.1f}s")
        self.status = "ready"
        self.save()
        self.progress(f"  up in {time.monotonic() - t0:.1f}s")

    # ------------------------------------------------------------------ run loop
    def request_stop(self, *_: Any) -> None:
        self._stop = True

    def request_reload(self, *_: Any) -> None:
        self._reload = True

    def request_cancel(self, *_: Any) -> None:
        self.cancel_requested = True

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGHUP, self.request_stop)
        signal.signal(RELOAD_SIGNAL, self.request_reload)
        signal.signal(CANCEL_SIGNAL, self.request_cancel)

    def serve_forever(self, probe_period: float = 0.5) -> None:
        from .rollout import reload

        next_probe = 0.0
        while not self._stop:
            changed = False
            now = time.monotonic()
            for p in list(self.retiring):
                if not p.running() or now > p.meta["retire_by"]:
                    p.stop(1)
                    self.retiring.remove(p)
                    changed = True
            for p in self.all_procs():
                if p in self.retiring:
                    continue
                if p.popen is not None and not p.running() and p.restart_at is None:
                    # Crashed: not ready at once (kubelet would see the container exit), restart later.
                    p.ready = False
                    delay = RESTART_BACKOFF[min(p.restarts, len(RESTART_BACKOFF) - 1)]
                    p.restart_at = now + delay
                    self.progress(f"  {p.kind} {p.name} exited ({p.popen.returncode}); restarting in {delay:.0f}s")
                    changed = True
                elif p.restart_at is not None and now >= p.restart_at:
                    p.restarts += 1
                    p.start()
                    changed = True
            if now >= next_probe:
                next_probe = now + probe_period
                for p in self.sims.values():
                    ok = self.replicas.ready(p)
                    if ok != p.ready:
                        p.ready = ok
                        changed = True
            assert self.plan is not None
            specs = {name: pool.picker for name, pool in self.plan.pools.items()}
            changed |= self.watchdog.step(now, [(p, specs[pool]) for pool, group in self.pickers.items()
                                                if pool in specs for p in group])
            changed |= self.autoscaler.step(now)
            if changed:
                self.publish_endpoints()
                self.save()
            if self._reload:
                self._reload = False
                reload(self)
            time.sleep(0.05)

    # ------------------------------------------------------------------ stop
    def stop_all(self) -> None:
        """Envoy first (no new requests), then pickers, then replicas; TERM, then KILL after 5s."""
        if self._stopped:
            return
        self._stopped = True
        self.status = "stopping"
        try:
            self.save()
        except OSError:
            pass
        self.watchdog.close()
        self.autoscaler.close()
        for group in ([self.envoy] if self.envoy else [], self.picker_procs() + self.retiring,
                      list(self.sims.values())):
            for p in group:
                p.signal(signal.SIGTERM)
            deadline = time.monotonic() + 5
            for p in group:
                p.wait(max(0.1, deadline - time.monotonic()))
            for p in group:
                p.stop(0.5)
        self.status = "failed" if self.error else "stopped"
        try:
            self.save()
        except OSError:
            pass
        self.http.close()


def run_supervisor(opts: Options, manifests: Path, progress=print, on_ready=None) -> int:
    """Start the stack, serve until stopped, stop everything; 1 on a startup failure."""
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
