"""The local supervisor: runs a LocalPlan as processes and keeps it running.

One supervisor per stack owns every child: one simulator per model-server replica (own loopback
address, like a pod IP), one picker per InferencePool (file discovery), one Envoy. Children run in
their own process groups with PR_SET_PDEATHSIG, so they never outlive the supervisor; the
supervisor stops them on SIGTERM/SIGINT, on a startup failure and at exit.

While running it acts as the kubelet and the controllers would: probes each replica's
readinessProbe, publishes ready pods to the pickers (endpoints file) and to Envoy (EDS file),
restarts crashed processes with backoff, and on SIGUSR1 applies a new render (see `reload`).
SIGTERM, SIGINT (Ctrl-C) and SIGHUP (terminal closed) stop everything.
"""

from __future__ import annotations

import atexit
import ctypes
import dataclasses
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import httpx
import yaml

from .envoy import EnvoyFiles
from .plan import LocalPlan, Pool, Replica, build_plan, cloud_resources, load_manifests
from .state import kill_group, write_state

PR_SET_PDEATHSIG = 1
RESTART_BACKOFF = (2.0, 4.0, 8.0, 16.0, 30.0)
UPSTREAM_SIM_ENV = "IGW_UPSTREAM_SIM"
RELOAD_SIGNAL = signal.SIGUSR1


class StartupError(RuntimeError):
    pass


def _describe(e) -> list[str]:
    """[match, what happens, backends] for the summary table."""
    match = ("= " if e.path_type == "Exact" else "") + e.path + ("*" if e.path_type == "PathPrefix" else "")
    if e.method:
        match = f"{e.method} {match}"
    match += "".join(f" [{h.name}: {h.value}]" for h in e.headers)
    does = []
    if e.rewrite_full is not None:
        does.append(f"path -> {e.rewrite_full}")
    if e.rewrite_prefix is not None:
        does.append(f"prefix -> {e.rewrite_prefix}")
    does += [f"{k}: {v}" for k, v in e.set_headers]
    backends = ", ".join(p if len(e.backends) == 1 else f"{p}={w}" for p, w in e.backends) or "-"
    return [match, "; ".join(does) or "-", backends]


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def envoy_binary() -> str:
    from endpoint_picker.testing.envoy import envoy_binary as find

    return find()


@dataclasses.dataclass
class Proc:
    name: str
    kind: str                      # simulator | picker | envoy
    argv: list[str]
    log: Path
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    popen: subprocess.Popen | None = None
    restarts: int = 0
    ready: bool = False
    restart_at: float | None = None
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            log.write(f"--- {time.strftime('%H:%M:%S')} start: {' '.join(self.argv)}\n".encode())
            log.flush()
            self.popen = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
                start_new_session=True, preexec_fn=_die_with_parent,
            )
        self.restart_at = None

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.running():
            kill_group(self.popen.pid, sig)

    def wait(self, timeout: float) -> bool:
        if self.popen is None:
            return True
        try:
            self.popen.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def stop(self, timeout: float = 5.0) -> None:
        if self.popen is None:
            return
        self.signal(signal.SIGTERM)
        if not self.wait(timeout):
            kill_group(self.popen.pid, signal.SIGKILL)
            self.wait(5)
        # Anything left in its process group (e.g. a child of the child) goes too.
        kill_group(self.popen.pid, signal.SIGKILL)

    def tail(self, n: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "pid": self.pid, "log": str(self.log),
                "restarts": self.restarts, "ready": self.ready, "running": self.running(), **self.meta}


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


class Supervisor:
    def __init__(self, opts: Options, progress: Callable[[str], None] = print) -> None:
        self.o = opts
        self.progress = progress
        self.dir = opts.state_dir
        self.logs = self.dir / "logs"
        self.envoy_files = EnvoyFiles(self.dir / "envoy")
        self.plan: LocalPlan | None = None
        self.sims: dict[str, Proc] = {}
        self.pickers: dict[str, Proc] = {}
        self.envoy: Proc | None = None
        self.retiring: list[Proc] = []    # replaced pickers draining their open streams
        self.admin_port = free_port()
        self.generation = 0
        self.status = "starting"
        self.error: str | None = None
        self.last_reload: dict[str, Any] | None = None
        self._stop = False
        self._reload = False
        self._stopped = False
        self._http = httpx.Client(timeout=1.0)
        self.started_at = time.time()

    # ------------------------------------------------------------------ state
    def state(self) -> dict[str, Any]:
        plan = self.plan
        procs = {p.name: p.to_json() for p in self._all()}
        return {
            "stack": self.o.stack, "status": self.status, "error": self.error,
            "supervisor_pid": os.getpid(), "generation": self.generation, "started_at": self.started_at,
            "gateway_url": f"http://{self.o.listen_address}:{self.o.port}",
            "listeners": [{"gateway": l.gateway, "name": l.name, "port": l.port, "local_port": l.local_port,
                           "routes": [_describe(e) for e in l.routes]}
                          for l in plan.listeners] if plan else [],
            "admin_port": self.admin_port, "time_scale": self.o.time_scale,
            "state_dir": str(self.dir), "manifests_dir": str(self.dir / "manifests"),
            "processes": procs, "last_reload": self.last_reload,
            "pools": {name: {"failure_mode": p.failure_mode, "timeout_s": p.timeout_s,
                             "picker": self.pickers[name].name if name in self.pickers else None,
                             "replicas": [r.name for r in p.replicas]}
                      for name, p in plan.pools.items()} if plan else {},
            "models": [dataclasses.asdict(m) for m in plan.models] if plan else [],
            "skipped": plan.skipped if plan else [],
            "warnings": plan.warnings if plan else [],
            "upstream_sim": self.o.upstream_sim,
        }

    def save(self) -> None:
        write_state(self.dir, self.state())

    def _all(self) -> list[Proc]:
        return (list(self.sims.values()) + list(self.pickers.values()) + self.retiring
                + ([self.envoy] if self.envoy else []))

    # ------------------------------------------------------------------ manifests
    def _install_manifests(self, source: Path) -> Path:
        """Copy a render into manifests.<gen>/ and atomically repoint the `manifests` symlink the
        pickers read, so they never see a half-updated directory."""
        gen_dir = self.dir / f"manifests.{self.generation}"
        if gen_dir.exists():
            shutil.rmtree(gen_dir)
        shutil.copytree(source, gen_dir, copy_function=shutil.copy)  # fresh mtimes: pickers reload on mtime
        link = self.dir / "manifests"
        tmp = self.dir / ".manifests.tmp"
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        tmp.symlink_to(gen_dir.name)
        os.replace(tmp, link)
        for old in self.dir.glob("manifests.*"):
            if old != gen_dir and old.name != f"manifests.{self.generation - 1}":
                shutil.rmtree(old, ignore_errors=True)
        return link

    # ------------------------------------------------------------------ simulators
    def _sim_proc(self, r: Replica) -> Proc:
        if self.o.upstream_sim:
            return self._upstream_sim_proc(r)
        argv = [sys.executable, "-m", "vllm_simulator.main", *r.args, "--host", r.address, "--port", str(r.ports[0]),
                "--pod-name", r.name, "--time-scale", f"{self.o.time_scale:g}"]
        for extra in r.ports[1:]:  # data-parallel ranks: one more listener per targetPort
            argv += ["--listen", f"{r.address}:{extra}:{r.name}"]
        if r.adapters:
            argv += ["--lora-modules", *[f"{i}={src}" for i, src in r.adapters]]
        p = Proc(r.name, "simulator", argv, self.logs / f"{r.name}.log", env={"POD_NAME": r.name})
        p.meta = {"address": r.address, "ports": list(r.ports), "adapters": [a for a, _ in r.adapters],
                  "model": r.model, "deployment": r.deployment, "fingerprint": self._replica_fp(r)}
        return p

    # llm-d-inference-sim understands these vLLM flags; others would make it exit (pflag).
    _UPSTREAM_FLAGS = {"--model", "--served-model-name", "--max-loras", "--max-cpu-loras", "--max-num-seqs",
                       "--max-model-len", "--block-size", "--seed", "--data-parallel-size"}

    def _upstream_sim_proc(self, r: Replica) -> Proc:
        """llm-d-inference-sim has no --host flag (it listens on every address), so each replica
        gets its own port on 127.0.0.1 and igw.local.forward owns the pod address. Timing: the
        7-8B/H100 preset (TTFT 100 ms, ITL 12 ms) x --time-scale."""
        port = free_port()
        args: list[str] = []
        i = 0
        while i < len(r.args):
            a = r.args[i]
            key = a.partition("=")[0]
            has_value = "=" not in a and i + 1 < len(r.args) and not r.args[i + 1].startswith("--")
            if key in self._UPSTREAM_FLAGS:
                args += [a, r.args[i + 1]] if has_value else [a]
            i += 2 if has_value else 1
        ttft = max(1, round(100 * self.o.time_scale))
        itl = max(1, round(12 * self.o.time_scale))
        argv = [str(self.o.upstream_sim), *args, "--port", str(port), "--time-to-first-token", str(ttft),
                "--inter-token-latency", str(itl)]
        if r.adapters:
            argv += ["--lora-modules", *[f'{{"name":"{a}","path":"{src}"}}' for a, src in r.adapters]]
        fwd = [sys.executable, "-m", "igw.local.forward", f"{r.address}:{r.ports[0]}", f"127.0.0.1:{port}", "--", *argv]
        p = Proc(r.name, "simulator", fwd, self.logs / f"{r.name}.log", env={"POD_NAME": r.name})
        p.meta = {"address": r.address, "ports": list(r.ports), "adapters": [a for a, _ in r.adapters],
                  "model": r.model, "deployment": r.deployment, "fingerprint": self._replica_fp(r),
                  "upstream_port": port}
        return p

    def _replica_fp(self, r: Replica) -> str:
        return hashlib.sha256(repr((r.address, r.ports, r.args, r.adapters, r.labels)).encode()).hexdigest()[:12]

    def _probe(self, p: Proc) -> bool:
        if not p.running():
            return False
        path = p.meta.get("readiness_path", "/health")
        try:
            return self._http.get(f"http://{p.meta['address']}:{p.meta['ports'][0]}{path}").status_code == 200
        except httpx.HTTPError:
            return False

    # ------------------------------------------------------------------ pickers
    def _picker_proc(self, pool: Pool, name: str | None = None) -> Proc:
        cfg_path = self.dir / f"picker-{pool.name}.yaml"
        cfg_path.write_text(yaml.safe_dump(pool.local_picker_config(), sort_keys=False))
        grpc_port, health_port, metrics_port = free_port(), free_port(), free_port()
        argv = [sys.executable, "-m", "endpoint_picker.main", "--pool-name", pool.name,
                "--pool-namespace", pool.namespace, "--config-file", str(cfg_path), "--discovery", "files",
                "--manifests-dir", str(self.dir / "manifests"), "--endpoints-file", str(self._endpoints_file(pool.name)),
                "--grpc-port", str(grpc_port), "--grpc-health-port", str(health_port),
                "--metrics-port", str(metrics_port), "--bind-address", "127.0.0.1", "--log-level", "warning",
                "--drain-timeout", "60"]
        name = name or f"{pool.name}-epp"
        p = Proc(name, "picker", argv, self.logs / f"{name}.log")
        p.meta = {"pool": pool.name, "grpc_port": grpc_port, "health_port": health_port, "metrics_port": metrics_port,
                  "failure_mode": pool.failure_mode, "config_fp": self._picker_fp(pool)}
        return p

    def _picker_fp(self, pool: Pool) -> str:
        return hashlib.sha256(repr((pool.namespace, yaml.safe_dump(pool.local_picker_config(), sort_keys=True))).encode()).hexdigest()[:12]

    def _picker_ready(self, p: Proc) -> bool:
        if not p.running():
            return False
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        with grpc.insecure_channel(f"127.0.0.1:{p.meta['health_port']}") as ch:
            try:
                resp = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service="readiness"), timeout=1)
                return resp.status == health_pb2.HealthCheckResponse.SERVING
            except grpc.RpcError:
                return False

    def _endpoints_file(self, pool: str) -> Path:
        return self.dir / f"endpoints-{pool}.yaml"

    # ------------------------------------------------------------------ publishing
    def publish_endpoints(self) -> None:
        """Ready pods → each picker's endpoints file and Envoy's EDS (both atomic replaces)."""
        assert self.plan is not None
        for pool in self.plan.pools.values():
            pods, eps = [], []
            for r in pool.replicas:
                p = self.sims.get(r.name)
                ready = bool(p and p.ready)
                pods.append({"name": r.name, "namespace": pool.namespace, "address": r.address,
                             "labels": r.labels, "ready": ready})
                if ready:
                    eps += [f"{r.address}:{port}" for port in pool.target_ports]
            f = self._endpoints_file(pool.name)
            body = yaml.safe_dump({"pods": pods}, sort_keys=False)
            if not f.exists() or f.read_text() != body:
                tmp = f.with_name("." + f.name + ".tmp")
                tmp.write_text(body)
                os.replace(tmp, f)
            self.envoy_files.write_endpoints(pool.name, eps)

    def _endpoints(self) -> dict[str, list[str]]:
        assert self.plan is not None
        return {pool.name: [f"{r.address}:{port}" for r in pool.replicas
                            if self.sims.get(r.name) and self.sims[r.name].ready for port in pool.target_ports]
                for pool in self.plan.pools.values()}

    def _picker_ports(self) -> dict[str, int]:
        return {pool: p.meta["grpc_port"] for pool, p in self.pickers.items()}

    # ------------------------------------------------------------------ waiting
    def _wait(self, what: str, procs: list[Proc], check: Callable[[Proc], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = list(procs)
        while pending:
            for p in list(pending):
                if not p.running():
                    raise StartupError(f"{p.kind} {p.name} exited with status {p.popen.returncode if p.popen else '?'} "
                                       f"while starting; last lines of {p.log}:\n{p.tail()}")
                if check(p):
                    p.ready = True
                    pending.remove(p)
            if self._stop:
                raise StartupError("interrupted")
            if not pending:
                break
            if time.monotonic() > deadline:
                names = ", ".join(p.name for p in pending)
                raise StartupError(f"{what} not ready after {timeout:.0f}s: {names}; last lines of "
                                   f"{pending[0].log}:\n{pending[0].tail()}")
            time.sleep(0.05)

    def _envoy_ready(self, _: Proc) -> bool:
        """Envoy is LIVE and every listener from LDS is bound (a failed bind drops the listener)."""
        try:
            if self._http.get(f"http://127.0.0.1:{self.admin_port}/ready").status_code != 200:
                return False
            active = self._http.get(f"http://127.0.0.1:{self.admin_port}/listeners?format=json").json()
        except (httpx.HTTPError, ValueError):
            return False
        names = {l.get("name") for l in active.get("listener_statuses") or []}
        from .envoy import listener_name

        return self._envoy_applied() and all(listener_name(l) in names and port_open(self.o.listen_address, l.local_port)
                                             for l in (self.plan.listeners if self.plan else []))

    def _envoy_applied(self) -> bool:
        try:
            dump = self._http.get(f"http://127.0.0.1:{self.admin_port}/config_dump").json()
        except (httpx.HTTPError, ValueError):
            return False
        return self.envoy_files.applied(dump)

    def _wait_envoy_applied(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not self._envoy_applied():
            if time.monotonic() > deadline:
                assert self.envoy is not None
                raise StartupError("Envoy did not accept the new configuration; last lines of "
                                   f"{self.envoy.log}:\n{self.envoy.tail(8)}")
            time.sleep(0.05)

    def _check_ports(self, plan: LocalPlan) -> None:
        """Fail before starting anything when an address we need is taken."""
        wanted = [(self.o.listen_address, l.local_port, f"gateway listener {l.gateway} {l.name}") for l in plan.listeners]
        wanted += [(r.address, port, f"pod {r.name}") for r in plan.replicas for port in r.ports]
        for host, port, what in wanted:
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind((host, port))
                except OSError as e:
                    hint = " (use --port)" if what.startswith("gateway") else " (use --address-base)"
                    raise StartupError(f"{host}:{port} for {what} is not available: {e.strerror}{hint}") from None

    # ------------------------------------------------------------------ start
    def start(self, manifests: Path) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        atexit.register(self.stop_all)
        self.save()
        t0 = time.monotonic()
        plan = build_plan(load_manifests(manifests), port=self.o.port, address_base=self.o.address_base)
        self._check_ports(plan)
        plan.skipped += cloud_resources(manifests.resolve().parent / "resources.json")
        self.plan = plan
        self._install_manifests(manifests)

        # 1. model-server replicas
        t = time.monotonic()
        for r in plan.replicas:
            self.sims[r.name] = p = self._sim_proc(r)
            p.meta["readiness_path"] = r.readiness_path
            p.start()
        self.save()
        kind = "llm-d-inference-sim" if self.o.upstream_sim else "vllm-sim"
        addrs = ", ".join(f"{r.address}:{r.ports[0]}" for r in plan.replicas)
        self.progress(f"  replicas  {len(plan.replicas)} x {kind} (time scale {self.o.time_scale:g}) on {addrs} ...")
        self._wait("replicas", list(self.sims.values()), self._probe, self.o.startup_timeout)
        self.publish_endpoints()
        self.progress(f"            ready in {time.monotonic() - t:.1f}s")

        # 2. one picker per pool
        t = time.monotonic()
        for pool in plan.pools.values():
            self.pickers[pool.name] = p = self._picker_proc(pool)
            p.start()
        self.save()
        names = ", ".join(f"{p.name} ({p.meta['failure_mode']})" for p in self.pickers.values())
        self.progress(f"  pickers   {names} ...")
        self._wait("pickers", list(self.pickers.values()), self._picker_ready, self.o.startup_timeout)
        self.progress(f"            ready in {time.monotonic() - t:.1f}s")

        # 3. Envoy
        t = time.monotonic()
        self.envoy_files.write_config(plan, self._picker_ports(), self._endpoints(), self.o.listen_address,
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
        self._wait("envoy", [self.envoy], self._envoy_ready, self.o.startup_timeout)
        self.progress(f"            ready in {time.monotonic() - t:.1f}s")
        self.status = "ready"
        self.save()
        self.progress(f"  up in {time.monotonic() - t0:.1f}s")

    # ------------------------------------------------------------------ run loop
    def request_stop(self, *_: Any) -> None:
        self._stop = True

    def request_reload(self, *_: Any) -> None:
        self._reload = True

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGHUP, self.request_stop)
        signal.signal(RELOAD_SIGNAL, self.request_reload)

    def serve_forever(self, probe_period: float = 0.5) -> None:
        next_probe = 0.0
        while not self._stop:
            changed = False
            now = time.monotonic()
            for p in list(self.retiring):
                if not p.running() or now > p.meta["retire_by"]:
                    p.stop(1)
                    self.retiring.remove(p)
                    changed = True
            for p in self._all():
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
                    ok = self._probe(p)
                    if ok != p.ready:
                        p.ready = ok
                        changed = True
                for p in self.pickers.values():
                    ok = self._picker_ready(p)
                    if ok != p.ready:
                        p.ready = ok
                        changed = True
            if changed:
                self.publish_endpoints()
                self.save()
            if self._reload:
                self._reload = False
                self.reload()
            time.sleep(0.05)

    # ------------------------------------------------------------------ reload
    def reload(self) -> None:
        """Apply a new render without dropping requests in flight:

        * manifests: new generation dir + symlink swap → pickers hot-reload objectives/rewrites;
        * a pool whose picker.yaml changed gets a new picker on new ports; Envoy's picker cluster
          moves to it (CDS) and the old one drains its open streams on SIGTERM;
        * new replicas start and join once ready; removed (or changed) replicas leave the
          endpoints first, then stop; Envoy routes/clusters/listeners change through xDS files.
        On any error the running generation keeps serving and the error is reported."""
        req_file = self.dir / "reload.json"
        try:
            req = yaml.safe_load(req_file.read_text())
            source = Path(req["manifests"])
            self.status = "reloading"
            self.save()
            new = build_plan(load_manifests(source), port=int(req.get("port", self.o.port)),
                             address_base=self.o.address_base)
            new.skipped += cloud_resources(source.resolve().parent / "resources.json")
            if req.get("time_scale") is not None and float(req["time_scale"]) != self.o.time_scale:
                self.o.time_scale = float(req["time_scale"])
                for p in self.sims.values():  # running replicas switch at once (simulator control)
                    try:
                        self._http.post(f"http://{p.meta['address']}:{p.meta['ports'][0]}/sim/control",
                                        json={"time_scale": self.o.time_scale})
                    except httpx.HTTPError:
                        pass
            self.o.port = int(req.get("port", self.o.port))
            summary = self._apply(new, source)
            self.last_reload = {"generation": self.generation, "ok": True, "summary": summary, "at": time.time()}
            self.error = None
        except Exception as e:  # keep serving the old generation
            self.last_reload = {"generation": self.generation + 1, "ok": False, "error": str(e), "at": time.time()}
            self.generation += 1  # the requester waits for the generation to move
        self.status = "ready"
        self.save()

    def _apply(self, new: LocalPlan, source: Path) -> list[str]:
        old = self.plan
        assert old is not None
        summary: list[str] = []
        self.generation += 1
        # 1. new replicas (and changed ones, replaced under a new process) start first
        new_reps = {r.name: r for r in new.replicas}
        started: list[Proc] = []
        replaced: list[Proc] = []
        for name, r in new_reps.items():
            cur = self.sims.get(name)
            if cur is not None and cur.meta.get("fingerprint") == self._replica_fp(r):
                continue
            if cur is not None:
                cur.ready = False  # leaves the endpoints before it stops
                replaced.append(cur)
            if cur is not None:
                self.publish_endpoints()
                self._drain(cur)
                cur.stop()
            p = self._sim_proc(r)
            p.meta["readiness_path"] = r.readiness_path
            p.start()
            self.sims[name] = p
            started.append(p)
            summary.append(f"replica {name} {'replaced' if cur else 'added'}")
        removed = [self.sims[n] for n in list(self.sims) if n not in new_reps]
        self.plan = dataclasses.replace(new)  # endpoints publishing now follows the new plan
        if started:
            self._wait("replicas", started, self._probe, self.o.startup_timeout)
        # 2. manifests for the pickers (rewrites, objectives, pool selector)
        self._install_manifests(source)
        # 3. pickers: new pools / changed picker config → a new picker next to the old one
        old_pickers: list[Proc] = []
        for pool in new.pools.values():
            cur = self.pickers.get(pool.name)
            if cur is not None and cur.meta.get("config_fp") == self._picker_fp(pool):
                continue
            p = self._picker_proc(pool, name=f"{pool.name}-epp" if cur is None else f"{pool.name}-epp-g{self.generation}")
            p.start()
            self._wait("pickers", [p], self._picker_ready, self.o.startup_timeout)
            if cur is not None:
                old_pickers.append(cur)
            self.pickers[pool.name] = p
            summary.append(f"picker for {pool.name} {'restarted with new config' if cur else 'added'}")
        for name in [n for n in self.pickers if n not in new.pools]:
            old_pickers.append(self.pickers.pop(name))
            summary.append(f"picker for {name} removed")
        # 4. Envoy: endpoints, clusters, routes, listeners
        for r in removed:
            r.ready = False
        self.publish_endpoints()
        self.envoy_files.write_config(new, self._picker_ports(), self._endpoints(), self.o.listen_address,
                                      self.logs / "access.log")
        self._wait_envoy_applied()
        if [(l.name, l.local_port) for l in old.listeners] != [(l.name, l.local_port) for l in new.listeners]:
            summary.append("listeners updated")
        if [l.routes for l in old.listeners] != [l.routes for l in new.listeners]:
            summary.append("routes updated")
        if [dataclasses.astuple(m) for m in old.models] != [dataclasses.astuple(m) for m in new.models]:
            summary.append("served models / traffic split updated")
        time.sleep(0.5)  # let Envoy and the pickers pick the files up before old processes go
        # 5. retire what is gone: old pickers drain their streams on SIGTERM
        for p in old_pickers:
            p.signal(signal.SIGTERM)
        for r in removed:
            self._drain(r)
            r.stop()
            del self.sims[r.name]
            summary.append(f"replica {r.name} removed")
        # Old pickers finish their open streams in the background (reaped by serve_forever).
        for p in old_pickers:
            p.meta["retire_by"] = time.monotonic() + 65
            p.name = f"{p.name}-retiring-{self.generation}"
            self.retiring.append(p)
        return summary or ["no changes"]

    def _drain(self, p: Proc, timeout: float = 30.0) -> None:
        """A replica leaving the pool: it is already out of the endpoints; wait (bounded, like the
        Deployment's preStop + grace period) until it has no running or waiting request."""
        time.sleep(0.5)  # pickers and Envoy poll the files every 0.2 s
        deadline = time.monotonic() + timeout
        while p.running() and time.monotonic() < deadline:
            try:
                st = self._http.get(f"http://{p.meta['address']}:{p.meta['ports'][0]}/sim/state").json()
                if not st.get("running") and not st.get("waiting"):
                    return
            except (httpx.HTTPError, ValueError):
                return
            time.sleep(0.1)

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
        for group in ([self.envoy] if self.envoy else [], list(self.pickers.values()) + self.retiring,
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
        self._http.close()
