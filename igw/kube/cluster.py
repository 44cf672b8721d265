"""A real Kubernetes control plane on one loopback address: etcd, kube-apiserver and
kube-controller-manager as child processes, with no nodes, no scheduler and no kubelet.

    with LocalCluster(workdir, host="127.0.30.1", base_port=30000) as cluster:
        admin = cluster.admin()                          # KubeClient as a cluster admin
        token = cluster.service_account_token("ns", "sa")  # a bound ServiceAccount token
        path = cluster.kubeconfig("picker", token)       # a kubeconfig for that identity
        cluster.compact_etcd()                           # old resourceVersions now answer 410 Gone

Ports: etcd client `base_port`, etcd peer `+1`, kube-apiserver `+2`, kube-controller-manager
`+3`, all on `host`. The API server serves TLS with a certificate from its own CA (`ca_file`),
authenticates a static admin token (group system:masters) and ServiceAccount tokens (RS256,
issuer https://kubernetes.default.svc.cluster.local), and authorizes with RBAC only. Requests by
ServiceAccounts are written to an audit log (`audit_events()`), so a test can see exactly which
permissions a workload used. The controller manager runs the usual controllers (namespace and
ServiceAccount creation, garbage collection, ReplicaSets, token Secrets...).

Startup is bounded (`startup_timeout_s`); a failure raises ClusterError with the tail of every
log. Processes die with the Python process that started them (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import base64
import secrets
import socket
import time
from pathlib import Path
from typing import Iterable, Sequence

import httpx
import orjson
import yaml

from igw.local.process import Proc

from .binaries import Binaries, find_binaries
from .client import KubeClient, until
from .kubeconfig import write_kubeconfig
from .pki import make_pki

SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
ADMIN_USER = "igw-admin"

# Requests by ServiceAccounts at Metadata level (who, verb, resource, response code); nothing else.
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1", "kind": "Policy", "omitStages": ["RequestReceived"],
    "rules": [{"level": "Metadata", "userGroups": ["system:serviceaccounts"]}, {"level": "None"}],
}


class ClusterError(RuntimeError):
    pass


def port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


def find_free_host(candidates: Iterable[str], ports: Sequence[int]) -> str:
    """The first candidate address on which every one of `ports` can be bound right now."""
    tried = []
    for host in candidates:
        if all(port_free(host, p) for p in ports):
            return host
        tried.append(host)
    raise ClusterError(f"no free address among {tried[:3]}...{tried[-1:]} for ports {list(ports)}")


class LocalCluster:
    def __init__(self, workdir: Path, *, host: str = "127.0.30.1", base_port: int = 30000,
                 binaries: Binaries | None = None, apiserver_args: Sequence[str] = (),
                 startup_timeout_s: float = 120.0) -> None:
        self.workdir = Path(workdir)
        self.host = host
        self.etcd_port, self.etcd_peer_port, self.apiserver_port, self.controller_manager_port = (
            base_port, base_port + 1, base_port + 2, base_port + 3)
        self.binaries = binaries or find_binaries()
        self.apiserver_args = list(apiserver_args)
        self.startup_timeout_s = startup_timeout_s
        self.admin_token = secrets.token_urlsafe(32)
        self.startup_seconds: dict[str, float] = {}
        self._procs: list[Proc] = []
        self._admin: KubeClient | None = None

    # ------------------------------------------------------------------ public API
    @property
    def server(self) -> str:
        return f"https://{self.host}:{self.apiserver_port}"

    @property
    def ca_file(self) -> Path:
        return self.workdir / "pki" / "ca.crt"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.workdir / "kubeconfigs" / "admin.yaml"

    @property
    def audit_log(self) -> Path:
        return self.workdir / "audit.log"

    def admin(self) -> KubeClient:
        """A client authenticated as the cluster admin (shared; closed by stop())."""
        if self._admin is None:
            self._admin = KubeClient(self.server, token=self.admin_token, ca_file=self.ca_file)
        return self._admin

    def client(self, token: str) -> KubeClient:
        """A new client for another identity (the caller closes it)."""
        return KubeClient(self.server, token=token, ca_file=self.ca_file)

    def service_account_token(self, namespace: str, name: str, *, expiration_s: int = 3600) -> str:
        """A bound token for ServiceAccount namespace/name (created by the TokenRequest API)."""
        return self.admin().create_token(namespace, name, expiration_s=expiration_s)

    def kubeconfig(self, name: str, token: str | None = None, *, token_file: Path | None = None) -> Path:
        """Write workdir/kubeconfigs/<name>.yaml for the identity the token belongs to."""
        return write_kubeconfig(self.workdir / "kubeconfigs" / f"{name}.yaml", self.server, self.ca_file,
                                user=name, token=token, token_file=token_file)

    def etcd_revision(self) -> int:
        out = self._etcd("/v3/kv/range", {"key": base64.b64encode(b"/registry/").decode(), "limit": 1})
        return int(out["header"]["revision"])

    def compact_etcd(self) -> int:
        """Compact etcd's history up to the current revision (physically); returns that revision.
        Watches and lists from an older resourceVersion that reach etcd then fail with 410 Gone.
        The API server answers watches from its watch cache where it has one: for a kind whose
        watches should reach etcd, start with e.g. `apiserver_args=["--watch-cache-sizes=pods#0"]`."""
        rev = self.etcd_revision()
        try:
            self._etcd("/v3/kv/compaction", {"revision": str(rev), "physical": True})
        except ClusterError as e:
            if "compacted" not in str(e):  # the API server's own compactor got there first
                raise
        return rev

    def audit_events(self) -> list[dict]:
        if not self.audit_log.exists():
            return []
        return [orjson.loads(line) for line in self.audit_log.read_bytes().splitlines() if line.strip()]

    def logs(self, lines: int = 40) -> str:
        return "\n".join(f"--- {p.name} ({p.log}):\n{p.tail(lines)}" for p in self._procs)

    def running(self) -> bool:
        return bool(self._procs) and all(p.running() for p in self._procs)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> LocalCluster:
        self.workdir.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.startup_timeout_s
        try:
            self._start_etcd(deadline)
            self._start_apiserver(deadline)
            self._start_controller_manager(deadline)
        except BaseException as e:
            logs = self.logs()
            self.stop()
            if isinstance(e, (TimeoutError, ClusterError, OSError)):
                raise ClusterError(f"local cluster did not start: {e}\n{logs}") from e
            raise
        return self

    def stop(self) -> None:
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        for p in reversed(self._procs):
            p.stop(timeout=10)
        self._procs = []

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ internals
    def _run(self, name: str, argv: list[str]) -> Proc:
        p = Proc(name, "control-plane", argv, self.workdir / "logs" / f"{name}.log")
        p.start()
        self._procs.append(p)
        return p

    def _wait(self, name: str, proc: Proc, check, deadline: float) -> None:
        t0 = time.monotonic()

        def ok() -> bool:
            if not proc.running():
                raise ClusterError(f"{name} exited with status {proc.popen.returncode}")
            try:
                return bool(check())
            except (httpx.HTTPError, OSError):
                return False

        until(ok, timeout=max(0.0, deadline - time.monotonic()), what=f"{name} ready", interval=0.2)
        self.startup_seconds[name] = round(time.monotonic() - t0, 2)

    def _etcd(self, path: str, body: dict) -> dict:
        r = httpx.post(f"http://{self.host}:{self.etcd_port}{path}", json=body, timeout=10)
        if r.status_code != 200:
            raise ClusterError(f"etcd {path}: HTTP {r.status_code} {r.text[:300]}")
        return r.json()

    def _start_etcd(self, deadline: float) -> None:
        data = self.workdir / "etcd"
        client, peer = f"http://{self.host}:{self.etcd_port}", f"http://{self.host}:{self.etcd_peer_port}"
        proc = self._run("etcd", [
            str(self.binaries.etcd), "--name", "igw", "--data-dir", str(data),
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", f"igw={peer}",
            "--logger", "zap", "--log-outputs", "stderr", "--log-level", "warn",
        ])
        self._wait("etcd", proc, lambda: httpx.get(f"{client}/health", timeout=2).json().get("health") == "true",
                   deadline)

    def _start_apiserver(self, deadline: float) -> None:
        pki = make_pki(self.workdir / "pki", self.host)
        tokens = self.workdir / "tokens.csv"
        tokens.write_text(f'{self.admin_token},{ADMIN_USER},{ADMIN_USER},"system:masters"\n')
        tokens.chmod(0o600)
        policy = self.workdir / "audit-policy.yaml"
        policy.write_text(yaml.safe_dump(AUDIT_POLICY))
        proc = self._run("kube-apiserver", [
            str(self.binaries.kube_apiserver),
            "--etcd-servers", f"http://{self.host}:{self.etcd_port}",
            "--bind-address", self.host, "--secure-port", str(self.apiserver_port), "--advertise-address", self.host,
            "--tls-cert-file", str(pki.serving_cert), "--tls-private-key-file", str(pki.serving_key),
            "--token-auth-file", str(tokens), "--authorization-mode", "RBAC",
            "--service-account-issuer", SERVICE_ACCOUNT_ISSUER,
            "--service-account-key-file", str(pki.sa_public_key),
            "--service-account-signing-key-file", str(pki.sa_key),
            "--service-cluster-ip-range", "10.96.0.0/24",
            # The `kubernetes` Service would advertise our loopback address, which Endpoints reject.
            "--endpoint-reconciler-type", "none",
            "--audit-policy-file", str(policy), "--audit-log-path", str(self.audit_log),
            "--profiling=false", "--cert-dir", str(self.workdir / "apiserver-certs"),
            *self.apiserver_args,
        ])
        self._write_admin_kubeconfig()
        self._wait("kube-apiserver", proc, self._apiserver_ready, deadline)

    def _apiserver_ready(self) -> bool:
        return self.admin().ready()

    def _write_admin_kubeconfig(self) -> None:
        write_kubeconfig(self.admin_kubeconfig, self.server, self.ca_file, user=ADMIN_USER, token=self.admin_token)

    def _start_controller_manager(self, deadline: float) -> None:
        pki = self.workdir / "pki"
        proc = self._run("kube-controller-manager", [
            str(self.binaries.kube_controller_manager),
            "--kubeconfig", str(self.admin_kubeconfig),
            "--bind-address", self.host, "--secure-port", str(self.controller_manager_port),
            "--cert-dir", str(self.workdir / "controller-manager-certs"),
            "--service-account-private-key-file", str(pki / "sa.key"), "--root-ca-file", str(pki / "ca.crt"),
            "--leader-elect=false", "--profiling=false",
        ])
        # Ready when its ServiceAccount controller has made `default` in the `default` namespace
        # (pods are admitted only once their namespace has that ServiceAccount).
        self._wait("kube-controller-manager", proc,
                   lambda: self.admin().get("v1", "ServiceAccount", "default", "default") is not None, deadline)
