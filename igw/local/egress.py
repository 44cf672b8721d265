"""External models' egress proxy pods, run locally: a real Envoy with the rendered config, and a
fake provider (``vllm_simulator.fake_provider``) in place of the provider's API.

What runs is the pod's own Envoy config (the ConfigMap, egress_pods.py) with only what a machine
without the provider must change, all of it listed in the summary:

- the listener binds the pod's loopback address (``0.0.0.0`` in the cluster) and the admin API a
  free loopback port;
- the provider cluster's address (``api.openai.com:443``) becomes the fake provider's, while SNI,
  the Host header, the path rewrite and the certificate check (the provider host as subject name)
  stay as rendered: the fake serves a certificate for that host from a CA made for the stack, and
  that CA replaces the system bundle;
- the provider key, a mounted Secret in the cluster (masked in a render), is a key generated per
  endpoint, written 0600 where the pod would mount it and given to the fake provider, which
  accepts nothing else.

One fake provider per external endpoint (on the first proxy pod's address, ports 8443 and 8444
for its control API), so one endpoint's provider can be made slow, failing or down without
touching the others. Provider processes end with the supervisor (they are its children).
"""

from __future__ import annotations

import atexit
import copy
import secrets
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from endpoint_picker.envoy_bootstrap import envoy_binary

from components.builders.egress_proxy import CLUSTER, KEY_FILE_NAME

from .egress_pods import ENDPOINT_ARG, ENVOY_ARG, PROVIDER_ARG, SDS_ARG, parse_args
from .plan_replicas import Replica
from .process import Proc, free_port, port_open
from .provider_tls import CA_CERT, host_certificate
from .replicas import _HttpProbes, _meta

PROVIDER_PORT, CONTROL_PORT = 8443, 8444


@dataclass
class FakeProvider:
    proc: Proc
    address: str
    host: str
    models: tuple[str, ...]

    def info(self) -> dict[str, Any]:
        return {"host": self.host, "api": f"https://{self.address}:{PROVIDER_PORT}",
                "control": f"http://{self.address}:{CONTROL_PORT}", "pid": self.proc.pid, "models": list(self.models)}


def upstream_of(config: dict[str, Any]) -> tuple[str, int]:
    """The provider (host, port) of a rendered proxy config."""
    cluster = next(c for c in config["static_resources"]["clusters"] if c["name"] == CLUSTER)
    addr = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
    return str(addr["address"]), int(addr["port_value"])


def localize(config: dict[str, Any], *, listen: tuple[str, int], admin_port: int, provider: tuple[str, int],
             ca_file: Path, sds_path: Path, key_dir: Path) -> dict[str, Any]:
    """The rendered proxy config with the local substitutions of the module docstring."""
    cfg = copy.deepcopy(config)
    cfg["admin"]["address"]["socket_address"].update(address="127.0.0.1", port_value=admin_port)
    listener = cfg["static_resources"]["listeners"][0]
    listener["address"]["socket_address"].update(address=listen[0], port_value=listen[1])
    cluster = next(c for c in cfg["static_resources"]["clusters"] if c["name"] == CLUSTER)
    cluster["type"] = "STATIC"
    cluster.pop("dns_lookup_family", None)
    addr = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
    addr.update(address=provider[0], port_value=provider[1])
    tls = cluster["transport_socket"]["typed_config"]["common_tls_context"]["validation_context"]
    tls["trusted_ca"] = {"filename": str(ca_file)}
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    for f in hcm["http_filters"]:
        if f["name"] == "envoy.filters.http.credential_injector":
            source = f["typed_config"]["credential"]["typed_config"]["credential"]["sds_config"]["path_config_source"]
            source["path"] = str(sds_path)
            source["watched_directory"] = {"path": str(key_dir)}
    return cfg


def localize_sds(sds: dict[str, Any], key_file: Path) -> dict[str, Any]:
    out = copy.deepcopy(sds)
    for r in out["resources"]:
        r["generic_secret"]["secret"]["filename"] = str(key_file)
    return out


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_text(text)
    tmp.chmod(mode)
    tmp.replace(path)


class EgressLauncher(_HttpProbes):
    """Egress proxy pods as Envoy processes, each endpoint's provider as a fake provider."""

    kind = "egress-proxy"

    def __init__(self, http: httpx.Client) -> None:
        super().__init__(http)
        self.providers: dict[str, FakeProvider] = {}
        atexit.register(self.stop_providers)  # the supervisor stops its pods, then exits: providers go last

    # -- the provider of an endpoint ---------------------------------------------------------------
    def key_file(self, work: Path) -> Path:
        """The endpoint's provider key, where the pod would mount it (made once per stack run)."""
        key = work / "key" / KEY_FILE_NAME
        if not key.exists():
            _write(key, f"sk-local-{secrets.token_urlsafe(24)}", 0o600)
        return key

    def provider(self, deployment: str, r: Replica, host: str, provider: str, work: Path, logs: Path) -> FakeProvider:
        cur = self.providers.get(deployment)
        if cur is not None and cur.host == host:
            if not cur.proc.running():
                cur.proc.start()
            if set(r.models) - set(cur.models):  # the endpoint now asks for another of the provider's models
                cur.models = tuple(sorted({*cur.models, *r.models}))
                try:
                    self.http.post(f"http://{cur.address}:{CONTROL_PORT}/fake/control", json={"add_models": list(cur.models)})
                except httpx.HTTPError:
                    pass
            return cur
        if cur is not None:
            cur.proc.stop(2)
        cert, key = host_certificate(work, host)
        argv = [sys.executable, "-m", "vllm_simulator.fake_provider", "--host", r.address, "--port", str(PROVIDER_PORT),
                "--control-port", str(CONTROL_PORT), "--key-file", str(self.key_file(work)), "--models", ",".join(r.models),
                "--name", provider, "--tls-cert", str(cert), "--tls-key", str(key)]
        proc = Proc(f"{deployment}-provider", "fake-provider", argv, logs / f"{deployment}-provider.log")
        proc.start()
        fake = FakeProvider(proc, r.address, host, r.models)
        self.providers[deployment] = fake
        deadline = time.monotonic() + 15
        while not port_open(r.address, CONTROL_PORT) and proc.running() and time.monotonic() < deadline:
            time.sleep(0.05)
        return fake

    # -- ReplicaLauncher ---------------------------------------------------------------------------
    def proc(self, r: Replica, logs: Path) -> Proc:
        a = parse_args(r.args)
        rendered = yaml.safe_load(a[ENVOY_ARG])
        host, _ = upstream_of(rendered)
        work = logs.parent / "egress" / r.deployment
        fake = self.provider(r.deployment, r, host, a.get(PROVIDER_ARG, "openai"), work, logs)
        pod_dir = work / r.name
        admin_port = free_port()
        config = localize(rendered, listen=(r.address, r.ports[0]), admin_port=admin_port,
                          provider=(fake.address, PROVIDER_PORT), ca_file=work.parent / CA_CERT,
                          sds_path=pod_dir / "provider-key-sds.yaml", key_dir=work / "key")
        _write(pod_dir / "provider-key-sds.yaml", yaml.safe_dump(localize_sds(yaml.safe_load(a[SDS_ARG]), self.key_file(work))))
        _write(pod_dir / "envoy.yaml", yaml.safe_dump(config, sort_keys=False))
        argv = [envoy_binary(), "-c", str(pod_dir / "envoy.yaml"), "--disable-hot-restart", "-l", "warning",
                "--concurrency", "1"]
        p = Proc(r.name, "egress-proxy", argv, logs / f"{r.name}.log")
        p.meta = {**_meta(r), "runtime": "external", "admin_port": admin_port, "endpoint": a.get(ENDPOINT_ARG, ""),
                  "provider": {**fake.info(), "name": a.get(PROVIDER_ARG, "openai")}}
        return p

    def ready(self, p: Proc) -> bool:
        fake = self.providers.get(p.meta.get("deployment", ""))
        if fake is not None and fake.proc.popen is not None and not fake.proc.running():
            fake.proc.start()  # a crashed fake provider comes back, as the real one would
        return super().ready(p)

    def idle(self, p: Proc) -> bool:
        """No request in flight through the proxy (Envoy's own count)."""
        try:
            text = self.http.get(f"http://127.0.0.1:{p.meta['admin_port']}/stats",
                                 params={"filter": "^http.egress.downstream_rq_active$"}).text
        except httpx.HTTPError:
            return True
        return all(line.rsplit(":", 1)[-1].strip() == "0" for line in text.splitlines() if line.strip())

    def set_time_scale(self, p: Proc, time_scale: float) -> None:
        pass  # a provider's speed is its own (the fake's control API sets delays)

    def stop_providers(self) -> None:
        for fake in self.providers.values():
            fake.proc.stop(2)


def external_summary(procs: dict[str, dict[str, Any]]) -> list[str]:
    """The summary's lines on external models: each proxy pod and what stands in for its provider."""
    pods = [p for p in procs.values() if p.get("kind") == "egress-proxy"]
    if not pods:
        return []
    lines = []
    for p in pods:
        prov = p.get("provider") or {}
        lines.append(f"    {p['name']} ({p['address']}:{p['ports'][0]}, ready: {'yes' if p.get('ready') else 'no'}) "
                     f"endpoint {p.get('endpoint')!r}: {prov.get('name')} {prov.get('host')} -> fake provider {prov.get('api')} "
                     f"(control {prov.get('control')})")
    return ["  External models (egress proxies: real Envoy with the rendered config; substituted: the provider's",
            "  address, a CA made for this stack in place of the system bundle, a generated provider key):",
            *lines, ""]
