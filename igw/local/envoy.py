"""Envoy configuration for a LocalPlan: a bootstrap plus file-based xDS (LDS/RDS/CDS/EDS).

Layout (under the state dir):

    envoy/bootstrap.yaml   admin port, node, dynamic_resources → xds/lds.yaml, xds/cds.yaml
    envoy/xds/lds.yaml     one listener per Gateway HTTP listener; HCM routes come from RDS
    envoy/xds/rds-<listener>.yaml   its route config (HTTPRoute rules, Gateway API order)
    envoy/xds/cds.yaml     per pool: `pool.<pool>` (EDS, override_host LB) and `picker.<pool>` (gRPC)
    envoy/xds/eds-<pool>.yaml   the pool's ready pods
    envoy/xds/eds-picker-<pool>.yaml   the pool's ready pickers (its leader, with several)

Routes are built in envoy_routes.py, resource names in envoy_names.py; this module builds the
bootstrap, listeners, clusters and endpoints and writes the files.

Every file is replaced atomically (write + rename inside the watched directory), so Envoy picks up
a change without a restart: a route/weight change only swaps the route table (in-flight requests
keep the one they started with), endpoint changes only touch EDS.

Per pool the HCM has one ext_proc filter (`igw.ext_proc.<pool>`, built by the picker's
`envoy_bootstrap.ext_proc_filter`), disabled by default and enabled by the routes (or the weighted
cluster entries) that send traffic to that pool, with the pool's `failureMode` as
`failure_mode_allow`. Route-level RequestHeaderModifier runs in a header_mutation filter *before*
ext_proc, so the picker sees the headers the route sets (e.g. the served-model rewrite header).

FailOpen: the pool cluster uses override_host (picker's ordered endpoint list from `envoy.lb`
metadata, then the header) with a round-robin fallback over the pool's ready pods. When the picker
is unreachable Envoy continues without its answer (failure_mode_allow) and the fallback picks a
ready pod; retries (connect failure / reset before response headers) move to another pod.

A hung picker is a failed one: each message waits at most the pool's `message_timeout` (an
annotation on the InferencePool), then a FailOpen pool goes on without the picker and a FailClose
pool answers 503 (ext_proc's own 500/504 replies become the gateway's JSON 503 `picker-unavailable`,
edge.picker_failure_reply). Once the supervisor's readiness probe fails it, the picker leaves its EDS
and requests stop waiting at all. The body modes (BUFFERED requests, STREAMED responses;
plan_pools.Pool.ext_proc_modes has the measurements) make sure a killed or frozen picker never
cuts a response that is already streaming on a FailOpen pool.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from endpoint_picker.envoy_bootstrap import ext_proc_filter, held_message_timeout_s, override_host_lb_policy, picker_cluster

from . import edge
from .envoy_names import HEADER_MUTATION, ext_proc_name, listener_name, picker_cluster_name, pool_cluster_name, rds_file
from .envoy_routes import route_config
from .plan import LocalPlan
from .plan_routes import Listener

_HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
H2C = "kubernetes.io/h2c"
_HTTP_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
OBSERVE = "igw.observe"
# After the picker: record the model the request is actually sent with (post-rewrite) as dynamic
# metadata for the access log. Reads at most the first 64 KiB; the picker already buffered the body.
_OBSERVE_LUA = """
function envoy_on_request(h)
  local body = h:body()
  if body == nil then return end
  local n = body:length()
  if n > 65536 then n = 65536 end
  local m = string.match(body:getBytes(0, n), '"model"%s*:%s*"([^"]*)"')
  if m ~= nil then h:streamInfo():dynamicMetadata():set("igw", "model", m) end
end
"""
ACCESS_LOG_FORMAT = {
    "time": "%START_TIME%",
    "method": "%REQ(:METHOD)%",
    "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
    "upstream_path": "%REQ(:PATH)%",
    "route": "%ROUTE_NAME%",
    "status": "%RESPONSE_CODE%",
    "flags": "%RESPONSE_FLAGS%",
    "duration_ms": "%DURATION%",
    "pod": "%RESP(X-INFERENCE-POD)%",
    "upstream": "%UPSTREAM_HOST%",
    "picked": "%DYNAMIC_METADATA(envoy.lb:x-gateway-destination-endpoint)%",
    "model": "%DYNAMIC_METADATA(igw:model)%",
    "attempts": "%UPSTREAM_REQUEST_ATTEMPT_COUNT%",
    "dropped_reason": "%RESP(X-LLM-D-REQUEST-DROPPED-REASON)%",
    "user": "%REQ(X-USER-ID)%",
    "client": "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%",
    "details": "%RESPONSE_CODE_DETAILS%",
    "request_id": "%REQ(X-REQUEST-ID)%",
}
BUFFER_LIMIT = 16 * 1024 * 1024
_BIG = {"max_connections": 100000, "max_pending_requests": 100000, "max_requests": 100000, "max_retries": 10000}


def _source(xds_dir: Path, filename: str) -> dict[str, Any]:
    return {"resource_api_version": "V3",
            "path_config_source": {"path": str(xds_dir / filename), "watched_directory": {"path": str(xds_dir)}}}


def bootstrap(xds_dir: Path, admin_port: int, node_id: str) -> dict[str, Any]:
    return {
        "node": {"id": node_id, "cluster": "igw-local"},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
        "dynamic_resources": {"lds_config": _source(xds_dir, "lds.yaml"), "cds_config": _source(xds_dir, "cds.yaml")},
    }


# --------------------------------------------------------------------------- listeners / clusters

def listener(lst: Listener, plan: LocalPlan, xds_dir: Path, address: str,
             access_log: Path | None = None) -> dict[str, Any]:
    filters: list[dict[str, Any]] = [{"name": HEADER_MUTATION, "typed_config": edge.gateway_address_filter_config()}]
    for pool in sorted(plan.pools.values(), key=lambda p: p.name):
        req_mode, resp_mode = pool.ext_proc_modes()
        f = ext_proc_filter(picker_cluster_name(pool.name), failure_mode_allow=pool.fail_open,
                            message_timeout_s=pool.message_timeout_s,
                            request_body_mode=req_mode, response_body_mode=resp_mode, name=ext_proc_name(pool.name),
                            # flow control: a held request's answer may come as late as its queue TTL
                            max_message_timeout_s=held_message_timeout_s(pool.picker_config.get("flow_control")))
        f["disabled"] = True  # enabled per route for the routes that reach this pool
        filters.append(f)
    filters.append({"name": OBSERVE, "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
        "default_source_code": {"inline_string": _OBSERVE_LUA}}})
    filters.append({"name": "envoy.filters.http.router", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}})
    max_timeout = max([p.timeout_s for p in plan.pools.values()] + [e.timeout_s or 0 for e in lst.routes])
    hcm = {
        "@type": _HCM,
        "stat_prefix": re.sub(r"[^a-zA-Z0-9_]", "_", listener_name(lst)),
        "codec_type": "AUTO",
        "stream_idle_timeout": f"{max_timeout:g}s",
        "rds": {"route_config_name": listener_name(lst), "config_source": _source(xds_dir, rds_file(lst))},
        "http_filters": filters,
        **edge.hcm_options(),  # path normalisation, client address, HTTP/1.0, JSON error replies
    }
    if access_log is not None:
        fmt = {"listener": listener_name(lst), **ACCESS_LOG_FORMAT}
        hcm["access_log"] = [{"name": "envoy.access_loggers.file", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
            "path": str(access_log), "log_format": {"json_format": fmt}}}]
    return {
        "@type": "type.googleapis.com/envoy.config.listener.v3.Listener",
        "name": listener_name(lst),
        "address": {"socket_address": {"address": address, "port_value": lst.local_port}},
        "per_connection_buffer_limit_bytes": BUFFER_LIMIT,
        "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}],
    }


def clusters(plan: LocalPlan, xds_dir: Path) -> list[dict[str, Any]]:
    out = []
    for pool in sorted(plan.pools.values(), key=lambda p: p.name):
        cluster: dict[str, Any] = {
            "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
            "name": pool_cluster_name(pool.name),
            "type": "EDS",
            "eds_cluster_config": {"eds_config": _source(xds_dir, f"eds-{pool.name}.yaml")},
            "connect_timeout": "1s",
            "load_balancing_policy": override_host_lb_policy(),
            "circuit_breakers": {"thresholds": [_BIG]},
        }
        if pool.app_protocol == H2C:
            # appProtocol kubernetes.io/h2c: cleartext HTTP/2 with prior knowledge to the pods (gRPC).
            cluster["typed_extension_protocol_options"] = {_HTTP_OPTIONS: {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}}}}
        out.append(cluster)
        # The pickers' addresses come from EDS too (the ready ones, as a Service's endpoints): a
        # replaced or failing picker leaves it while the streams already open on it finish (a
        # changed cluster would be rebuilt and its connections dropped).
        # TLS, as a gateway on GKE talks to the picker (its default --secure-serving, self-signed).
        pc = picker_cluster(picker_cluster_name(pool.name), tls=True)
        pc.pop("load_assignment")
        pc.update({"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "type": "EDS",
                   "eds_cluster_config": {"eds_config": _source(xds_dir, f"eds-picker-{pool.name}.yaml")},
                   "circuit_breakers": {"thresholds": [_BIG]}})
        out.append(pc)
    return out


def load_assignment(pool: str, endpoints: list[str], cluster: str | None = None) -> dict[str, Any]:
    eps = []
    for e in endpoints:
        host, _, port = e.rpartition(":")
        eps.append({"endpoint": {"address": {"socket_address": {"address": host, "port_value": int(port)}}}})
    return {"@type": "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
            "cluster_name": cluster or pool_cluster_name(pool), "endpoints": [{"lb_endpoints": eps}] if eps else []}


# --------------------------------------------------------------------------- files

def _write(path: Path, resources: list[dict[str, Any]], version: str) -> str:
    """Atomic replace inside the watched directory: Envoy sees a complete file or none.

    Unchanged resources keep their file (and version): Envoy ignores an update whose content
    hash is unchanged without moving its version, so rewriting would make `applied` wait forever.
    Returns the version the file now carries."""
    if path.exists():
        try:
            current = yaml.safe_load(path.read_text()) or {}
            if current.get("resources") == resources:
                return str(current.get("version_info", ""))
        except yaml.YAMLError:
            pass
    body = yaml.safe_dump({"version_info": version, "resources": resources}, sort_keys=False, width=160)
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_text(body)
    os.replace(tmp, path)
    return version


class EnvoyFiles:
    """Writes and rewrites the xDS files for one running stack."""

    def __init__(self, envoy_dir: Path) -> None:
        self.dir = envoy_dir
        self.xds = envoy_dir / "xds"
        self.xds.mkdir(parents=True, exist_ok=True)
        self.version = 0
        # What Envoy should report once it has read the files: LDS/CDS version, RDS name → version.
        self.lds_version = self.cds_version = ""
        self.route_versions: dict[str, str] = {}

    def write_bootstrap(self, admin_port: int, node_id: str) -> Path:
        p = self.dir / "bootstrap.yaml"
        p.write_text(yaml.safe_dump(bootstrap(self.xds, admin_port, node_id), sort_keys=False))
        return p

    def write_endpoints(self, pool: str, endpoints: list[str]) -> None:
        self.version += 1
        _write(self.xds / f"eds-{pool}.yaml", [load_assignment(pool, endpoints)], str(self.version))

    def write_picker_endpoints(self, pool: str, pickers: list[str]) -> None:
        self.version += 1
        _write(self.xds / f"eds-picker-{pool}.yaml", [load_assignment(pool, pickers, picker_cluster_name(pool))],
               str(self.version))

    def write_config(self, plan: LocalPlan, pickers: dict[str, list[str]], endpoints: dict[str, list[str]],
                     address: str = "127.0.0.1", access_log: Path | None = None) -> None:
        """Order matters for a live Envoy: endpoints and clusters before the routes that use them,
        listeners last."""
        self.version += 1
        v = str(self.version)
        for pool in plan.pools:
            _write(self.xds / f"eds-{pool}.yaml", [load_assignment(pool, endpoints.get(pool, []))], v)
            _write(self.xds / f"eds-picker-{pool}.yaml",
                   [load_assignment(pool, pickers.get(pool, []), picker_cluster_name(pool))], v)
        self.cds_version = _write(self.xds / "cds.yaml", clusters(plan, self.xds), v)
        self.route_versions = {}
        for lst in plan.listeners:
            self.route_versions[listener_name(lst)] = _write(
                self.xds / rds_file(lst),
                [{"@type": "type.googleapis.com/envoy.config.route.v3.RouteConfiguration", **route_config(lst, plan)}], v)
        self.lds_version = _write(self.xds / "lds.yaml",
                                  [listener(lst, plan, self.xds, address, access_log) for lst in plan.listeners], v)

    def applied(self, config_dump: dict[str, Any]) -> bool:
        return applied(config_dump, self.lds_version, self.cds_version, self.route_versions)


def applied(config_dump: dict[str, Any], lds: str, cds: str, routes: dict[str, str]) -> bool:
    """Whether a live Envoy (admin /config_dump) accepted the LDS, CDS and RDS files it was given
    (a rejected file only logs a warning, so this is how the runner finds out)."""
    ok_l = ok_c = False
    seen: dict[str, str] = {}
    for c in config_dump.get("configs") or []:
        t = c.get("@type", "")
        if t.endswith("ListenersConfigDump"):
            ok_l = c.get("version_info") == lds
        elif t.endswith("ClustersConfigDump"):
            ok_c = c.get("version_info") == cds
        elif t.endswith("RoutesConfigDump"):
            for r in c.get("dynamic_route_configs") or []:
                seen[r["route_config"]["name"]] = r.get("version_info", "")
    return ok_l and ok_c and all(seen.get(n) == v for n, v in routes.items())
