"""The reference picker (llm-d-router v0.10.0 `epp`) as a benchmark strategy, when a binary is given.

Built from the documented facts (../shared/reference/real-parts.md, llm-d-router v0.10.0
`docs/discovery.md`, `pkg/epp/config/loader/defaults.go`); its code is not used or copied.

* Configuration: an `EndpointPickerConfig` (`llm-d.ai/v1alpha1`) with a `file-discovery` plugin
  (`path`, `watchFile`) named by `dataLayer.discovery.pluginRef` (so the EPP runs without
  Kubernetes), metrics from a `metrics-data-source` with a `core-metrics-extractor`, and the
  default profile: queue-scorer 2, kv-cache-utilization-scorer 2, prefix-cache-scorer 3 and a
  max-score-picker. The approximate prefix producer the prefix scorer needs is created by the
  EPP itself (a missing default producer is registered automatically).
* Endpoints file: `endpoints: [{name, namespace, address, port}]`, address a literal IPv4 and the
  port a string, as the plugin requires.
* Envoy: ext_proc with both bodies FULL_DUPLEX_STREAMED, response headers SENT (the EPP reads
  the served endpoint and releases its in-flight accounting on them) and an ORIGINAL_DST pool
  cluster on `x-gateway-destination-endpoint` (one host per request; no fallback list).
  Our picker's shape (a STATIC cluster with override_host, response headers skipped) is not
  what the reference EPP works with.
* Flags: `--pool-name --pool-namespace --config-file --grpc-port --grpc-health-port
  --metrics-port --secure-serving=false --tracing=false`; `IGW_UPSTREAM_EPP_ARGS` replaces them
  (a template with {pool} {grpc_port} {health_port} {metrics_port} {config_file} {endpoints_file}).

In file-discovery mode the EPP starts no InferenceObjective reconciler, so priority workloads
cannot be compared against it.
"""

from __future__ import annotations

import ipaddress
import os
import shlex
from pathlib import Path
from typing import Any, Sequence

from endpoint_picker.envoy_bootstrap import build_bootstrap

API_VERSION = "llm-d.ai/v1alpha1"
DISCOVERY = "file-discovery"
DEFAULT_WEIGHTS = {"queue-scorer": 2.0, "kv-cache-utilization-scorer": 2.0, "prefix-cache-scorer": 3.0}
DEFAULT_ARGS = ("--pool-name {pool} --pool-namespace default --config-file {config_file} --grpc-port {grpc_port} "
                "--grpc-health-port {health_port} --metrics-port {metrics_port} --secure-serving=false --tracing=false")


def endpoints_document(endpoints: Sequence[str], namespace: str = "default") -> dict[str, Any]:
    """The file-discovery endpoints file for "ip:port" endpoints (IPv4 only, port as a string)."""
    out = []
    for i, ep in enumerate(endpoints):
        host, sep, port = ep.rpartition(":")
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise ValueError(f"endpoint {ep!r}: the reference EPP's file discovery takes literal IPv4 addresses only") from None
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"endpoint {ep!r}: expected ip:port with a port in 1-65535")
        out.append({"name": f"pod-{i}", "namespace": namespace, "address": host, "port": port})
    return {"endpoints": out}


def epp_config(endpoints_file: Path, weights: dict[str, float] | None = None) -> dict[str, Any]:
    """EndpointPickerConfig: file discovery, the metrics data layer and one scoring profile."""
    weights = dict(DEFAULT_WEIGHTS if weights is None else weights)
    unknown = set(weights) - set(DEFAULT_WEIGHTS)
    if unknown:
        raise ValueError(f"upstream EPP weights: unknown scorers {sorted(unknown)} (known: {sorted(DEFAULT_WEIGHTS)})")
    plugins: list[dict[str, Any]] = [
        {"name": DISCOVERY, "type": DISCOVERY, "parameters": {"path": str(endpoints_file), "watchFile": True}},
        {"name": "metrics-data-source", "type": "metrics-data-source"},
        {"name": "core-metrics-extractor", "type": "core-metrics-extractor"},
        *({"name": s, "type": s} for s in weights),
        {"name": "max-score-picker", "type": "max-score-picker"},
        {"name": "single-profile-handler", "type": "single-profile-handler"},
    ]
    return {
        "apiVersion": API_VERSION,
        "kind": "EndpointPickerConfig",
        "plugins": plugins,
        "schedulingProfiles": [{"name": "default", "plugins": [
            *({"pluginRef": s, "weight": w} for s, w in weights.items()),
            {"pluginRef": "max-score-picker"},
        ]}],
        "dataLayer": {
            "discovery": {"pluginRef": DISCOVERY},
            "sources": [{"pluginRef": "metrics-data-source", "extractors": [{"pluginRef": "core-metrics-extractor"}]}],
        },
    }


def weights_from(config: dict[str, Any] | None) -> dict[str, float] | None:
    """Scorer weights from a picker-style config (`scheduling.scorers`), for the reference's
    three scorers; None = the EPP's defaults."""
    scorers = ((config or {}).get("scheduling") or {}).get("scorers")
    if not scorers:
        return None
    return {s["type"]: float(s.get("weight", 1)) for s in scorers}


def envoy_bootstrap(listener_port: int, epp_address: str, listener_address: str) -> dict[str, Any]:
    """Envoy in front of the reference EPP: ORIGINAL_DST on the destination header, both bodies
    FULL_DUPLEX_STREAMED, response headers sent, fail closed (errors must show)."""
    boot = build_bootstrap(listener_port, epp_address, endpoints=None, retries=0, route_timeout_s=600.0,
                           request_body_mode="FULL_DUPLEX_STREAMED", response_body_mode="FULL_DUPLEX_STREAMED",
                           response_header_mode="SEND", listener_address=listener_address)
    for c in boot["static_resources"]["clusters"]:
        c.setdefault("circuit_breakers", {"thresholds": [{"max_connections": 100000, "max_pending_requests": 100000,
                                                          "max_requests": 100000}]})
    return boot


def command(binary: str, *, pool: str, config_file: Path, endpoints_file: Path, grpc_port: int, health_port: int,
            metrics_port: int) -> list[str]:
    tmpl = os.environ.get("IGW_UPSTREAM_EPP_ARGS", DEFAULT_ARGS)
    args = tmpl.format(pool=pool, grpc_port=grpc_port, health_port=health_port, metrics_port=metrics_port,
                       config_file=config_file, endpoints_file=endpoints_file)
    return [binary, *shlex.split(args)]
