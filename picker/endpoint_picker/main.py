"""`picker` command: flags, startup, SIGTERM drain.

picker --pool-name NAME --pool-namespace NS --config-file PATH
       [--discovery kubernetes|files] [--kubeconfig PATH] [--manifests-dir DIR --endpoints-file FILE]
       [--grpc-port 9002] [--grpc-health-port 9003] [--metrics-port 9090]
       [--bind-address 0.0.0.0] [--secure-serving[=true|false]] [--cert-path DIR]
       [--ha-enable-leader-election [--lease-file PATH] [--ha-lease-duration S] [--ha-retry-period S]]
       [--api-keys-file PATH]
       [--log-level info] [--drain-timeout SECONDS]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
import time
import uuid
from pathlib import Path
from typing import Sequence

import grpc
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as pb_grpc
from grpc_health.v1 import health_pb2_grpc

from .admission import ApiKeys, endpoint_saturation, pool_saturation
from .config import PickerConfig, load_config
from .datastore import Datastore
from .director import Director
from .errors import ConfigError, ServiceUnavailable
from .grpc_h2 import GrpcH2Server
from .health import Health
from .scheduling.registry import build_registry
from .scrape import Scraper
from .selfmetrics import EndpointView, SelfMetrics, serve_metrics
from .server import ExternalProcessor
from .tls import CertificateReloader, certificate_files, server_context

log = logging.getLogger("endpoint_picker")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="picker", description="Envoy ext_proc endpoint picker for one InferencePool.")
    p.add_argument("--pool-name", required=True, help="InferencePool to serve")
    p.add_argument("--pool-namespace", default="default", help="namespace of the InferencePool")
    p.add_argument("--config-file", help="picker.yaml (PickerConfig); omitted = defaults")
    p.add_argument("--discovery", choices=["kubernetes", "files"], default="kubernetes")
    p.add_argument("--manifests-dir", help="files discovery: directory of rendered Kubernetes YAML")
    p.add_argument("--endpoints-file", help="files discovery: YAML list of pods")
    p.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG") or None,
                   help="kubernetes discovery outside a pod: kubeconfig file (default $KUBECONFIG; "
                        "unset = the in-cluster ServiceAccount)")
    p.add_argument("--grpc-port", type=int, default=9002)
    p.add_argument("--grpc-health-port", type=int, default=9003)
    p.add_argument("--metrics-port", type=int, default=9090)
    p.add_argument("--bind-address", default="0.0.0.0")
    p.add_argument("--secure-serving", nargs="?", const=True, default=True, type=_flag_bool, metavar="BOOL",
                   help="TLS on the ext_proc port (default true, as the reference picker; gateways do not verify it)")
    p.add_argument("--cert-path", help="directory with tls.crt and tls.key; default: a self-signed certificate")
    p.add_argument("--ha-enable-leader-election", action="store_true")
    p.add_argument("--lease-file", help="leader election with files discovery: the Lease lives in this file "
                                        "(shared by the pool's pickers) instead of the API server")
    p.add_argument("--ha-lease-duration", type=int, default=15, metavar="SECONDS",
                   help="a leader that has not renewed for this long loses the Lease (default 15)")
    p.add_argument("--ha-retry-period", type=float, default=2.0, metavar="SECONDS",
                   help="how often the leader renews and a standby tries to acquire (default 2)")
    p.add_argument("--api-keys-file", help="YAML/JSON mapping sha256(api key) hex -> user name")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument("--drain-timeout", type=float, default=None,
                   help="seconds to drain streams on SIGTERM (default: ext_proc.drain_timeout_s, 30)")
    args = p.parse_args(argv)
    if args.discovery == "files" and not args.manifests_dir:
        p.error("--discovery files requires --manifests-dir (and usually --endpoints-file)")
    if args.ha_enable_leader_election and args.discovery == "files" and not args.lease_file:
        p.error("--ha-enable-leader-election with --discovery files requires --lease-file")
    if args.lease_file and args.discovery != "files":
        p.error("--lease-file is for --discovery files; with kubernetes the Lease is in the API server")
    if not 0 < args.ha_retry_period < args.ha_lease_duration:
        p.error(f"--ha-retry-period ({args.ha_retry_period:g}) must be positive and shorter than "
                f"--ha-lease-duration ({args.ha_lease_duration:g})")
    return args


def _flag_bool(value: str) -> bool:
    """Go-style boolean flag values, so `--secure-serving=false` reads as it does for the reference."""
    v = value.strip().lower()
    if v in ("true", "1", "yes"):
        return True
    if v in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, not {value!r}")


def _bind(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class App:
    """Wires the components; `run()` returns after a SIGTERM/SIGINT drain."""

    def __init__(self, args: argparse.Namespace, config: PickerConfig) -> None:
        self.args = args
        self.config = config
        self.store = Datastore()
        self.metrics = SelfMetrics()
        api_keys = ApiKeys.load(args.api_keys_file) if args.api_keys_file else None
        scheduler = build_registry().build(config.scheduling)
        self.director = Director(config, self.store, scheduler, self.metrics, api_keys)
        self.servicer = ExternalProcessor(self.director, config.ext_proc)
        self.health = Health()
        # Certificates are checked here, so a bad --cert-path exits 2 before anything listens.
        self.cert_files = certificate_files(args.cert_path) if args.secure_serving else None
        self.ssl_context = server_context(*self.cert_files) if self.cert_files else None
        self.reloader = (CertificateReloader(self.ssl_context, *self.cert_files)
                         if self.ssl_context is not None and args.cert_path else None)
        # A bad --kubeconfig also exits 2 here, before anything listens.
        self.kube_api = self._kube_api() if args.discovery == "kubernetes" else None
        self.elector = self._elector()
        self._stop = asyncio.Event()
        self.metrics.endpoint_state = self._endpoint_state
        self.metrics.ext_proc_counts = lambda: (self.servicer.streams_total, self.servicer.messages_in,
                                                self.servicer.messages_out)
        self.metrics.inflight = lambda: [(k, f.requests) for k, f in self.store.inflight.items()]
        self.metrics.leader = self.leading
        self.metrics.pool_saturation = lambda: pool_saturation(
            ((self.store.metrics[k], self.store.inflight[k]) for k in self.store.endpoints),
            config.saturation, config.scrape.engine != "none")
        self.metrics.endpoint_views = self._endpoint_views

    def _endpoint_state(self) -> list[tuple[str, float | None]]:
        now = time.monotonic()
        return [(k, None if m.updated_at == 0 else now - m.updated_at) for k, m in self.store.metrics.items()]

    def _endpoint_views(self) -> list[EndpointView]:
        now, cfg, engine = time.monotonic(), self.config.saturation, self.config.scrape.engine != "none"
        return [EndpointView(k, self.store.metrics[k],
                             endpoint_saturation(self.store.metrics[k], self.store.inflight[k], cfg, now, engine))
                for k in self.store.endpoints]

    def _kube_api(self):
        from .discovery.kubernetes import KubeApi

        return KubeApi.from_kubeconfig(Path(self.args.kubeconfig)) if self.args.kubeconfig else KubeApi.in_cluster()

    def _discovery(self):
        a = self.args
        if a.discovery == "files":
            from .discovery.files import FileDiscovery

            return FileDiscovery(self.store, pool_name=a.pool_name, pool_namespace=a.pool_namespace,
                                 manifests_dir=a.manifests_dir, endpoints_file=a.endpoints_file)
        from .discovery.kubernetes import KubernetesDiscovery

        return KubernetesDiscovery(self.store, self.kube_api, pool_name=a.pool_name, pool_namespace=a.pool_namespace)

    def _elector(self):
        """Active-passive: every replica runs discovery and scrapes its endpoints (a standby's
        datastore is as warm as the leader's), only the Lease holder reports ready, so the
        gateway (a Service's ready endpoints on Kubernetes) sends it the ext_proc streams."""
        a = self.args
        if not a.ha_enable_leader_election:
            return None
        from .discovery.kubernetes import LeaseElector, lease_name

        if a.discovery == "files":
            from .discovery.lease_file import FileLeaseApi

            api = FileLeaseApi(a.lease_file)
        else:
            api = self.kube_api
        return LeaseElector(api, namespace=a.pool_namespace, name=lease_name(a.pool_namespace, a.pool_name),
                            identity=f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}",
                            lease_duration_s=a.ha_lease_duration, retry_period_s=a.ha_retry_period)

    def leading(self) -> bool:
        return self.elector is None or self.elector.holds()

    async def _readiness_loop(self) -> None:
        while not self._stop.is_set():
            await self.health.set_ready(self.store.synced and self.leading())
            await asyncio.sleep(0.05)

    async def _reload_certificates(self, reloader: CertificateReloader, interval_s: float = 2.0) -> None:
        while not self._stop.is_set():
            await asyncio.sleep(interval_s)
            if reloader.check():
                log.info("serving the renewed certificate from %s", self.args.cert_path)

    async def _start_ext_proc(self, bind: str, port: int, opts: list) -> GrpcH2Server | grpc.aio.Server:
        files = self.cert_files
        if self.config.ext_proc.transport == "grpcio":
            server = grpc.aio.server(options=opts)
            pb_grpc.add_ExternalProcessorServicer_to_server(self.servicer, server)
            if files is None:
                server.add_insecure_port(_bind(bind, port))
            else:
                creds = grpc.ssl_server_credentials([(files[1].read_bytes(), files[0].read_bytes())])
                server.add_secure_port(_bind(bind, port), creds)
            await server.start()
            return server
        h2 = GrpcH2Server(self.servicer.open_stream)
        await h2.start(bind, port, ssl=self.ssl_context)
        return h2

    async def run(self) -> int:
        a = self.args
        bind = a.bind_address
        opts = [("grpc.so_reuseport", 0), ("grpc.max_receive_message_length", 128 * 1024 * 1024)]
        health_server = grpc.aio.server(options=opts)
        health_pb2_grpc.add_HealthServicer_to_server(self.health.servicer, health_server)
        health_server.add_insecure_port(_bind(bind, a.grpc_health_port))
        await self.health.start()
        await health_server.start()
        metrics_server = await serve_metrics(self.metrics, bind, a.metrics_port)

        discovery = self._discovery()
        tasks = [asyncio.create_task(discovery.run(), name="discovery")]
        if self.config.scrape.engine != "none":
            s = self.config.scrape
            flow = self.director.flow
            scraper = Scraper(self.store, interval_s=s.interval_ms / 1000, timeout_s=s.timeout_ms / 1000,
                              path=s.path, on_error=self.metrics.scrape_failed,
                              on_scraped=flow.kick if flow is not None else None)
            tasks.append(asyncio.create_task(scraper.run(), name="scraper"))
        else:
            scraper = None
        if self.elector is not None:
            tasks.append(asyncio.create_task(self.elector.run(), name="leader-election"))
        if self.director.flow is not None:
            tasks.append(asyncio.create_task(self.director.flow.run(), name="flow-control"))
        tasks.append(asyncio.create_task(self._readiness_loop(), name="readiness"))
        if self.reloader is not None and self.config.ext_proc.transport == "h2":  # grpcio loads once
            tasks.append(asyncio.create_task(self._reload_certificates(self.reloader), name="cert-reload"))
        server = await self._start_ext_proc(bind, a.grpc_port, opts)
        log.info("picker for pool %s/%s: ext_proc %s (%s), health %s, metrics %s", a.pool_namespace, a.pool_name,
                 a.grpc_port, "TLS" if a.secure_serving else "cleartext", a.grpc_health_port, a.metrics_port)

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        await self._stop.wait()

        # Drain: report not-ready, stop accepting, let open streams finish (bounded).
        drain = a.drain_timeout if a.drain_timeout is not None else self.config.ext_proc.drain_timeout_s
        log.info("shutting down: draining %d streams for up to %.0fs", self.servicer.active_streams, drain)
        await self.health.set_ready(False)
        if self.elector is not None:  # the standby takes over now, not a lease duration later
            await self.elector.release()
        if self.director.flow is not None:  # what waits would only wait out the drain
            self.director.flow.refuse_all(ServiceUnavailable("the endpoint picker is shutting down; try again",
                                                             reason="rejected-shutting-down", headers={"retry-after": "1"}))
        await server.stop(grace=drain)
        for t in tasks:
            t.cancel()
        if scraper is not None:
            scraper.stop()
        stop = getattr(discovery, "stop", None)
        if stop is not None:
            await stop()
        metrics_server.close()
        await health_server.stop(grace=0.5)
        return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(args.config_file)
    except ConfigError as e:
        print(f"picker: invalid config: {e}", file=sys.stderr)
        return 2

    async def _run() -> int:
        try:
            app = App(args, config)
        except ConfigError as e:
            print(f"picker: {e}", file=sys.stderr)
            return 2
        return await app.run()

    return asyncio.run(_run())


if __name__ == "__main__":
    sys.exit(main())
