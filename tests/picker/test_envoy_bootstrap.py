"""The public Envoy bootstrap helper: shape, and Envoy itself accepts every variant."""

from __future__ import annotations

import json
import subprocess

import pytest

from endpoint_picker.envoy_bootstrap import (
    build_bootstrap,
    ext_proc_filter,
    override_host_lb_policy,
    pool_cluster,
    resolve_response_header_mode,
)
from endpoint_picker.envoy_bootstrap import envoy_binary


def test_ext_proc_filter_modes_and_metadata():
    f = ext_proc_filter("picker", failure_mode_allow=True, request_body_mode="BUFFERED")["typed_config"]
    assert f["grpc_service"]["envoy_grpc"]["cluster_name"] == "picker"
    assert f["failure_mode_allow"] is True and f["allow_mode_override"] is False
    assert f["processing_mode"]["request_body_mode"] == "BUFFERED"
    assert f["processing_mode"]["response_body_mode"] == "FULL_DUPLEX_STREAMED"
    # The picker reads the subset hint and the served endpoint, and writes the destination.
    assert f["metadata_options"]["forwarding_namespaces"]["untyped"] == ["envoy.lb", "envoy.lb.subset_hint"]
    assert f["metadata_options"]["receiving_namespaces"]["untyped"] == ["envoy.lb"]


def test_response_headers_skipped_only_with_a_processed_response_body():
    # Every gRPC message costs the Python picker CPU; the body messages carry what it needs.
    modes = ext_proc_filter("picker")["typed_config"]["processing_mode"]
    assert modes["response_header_mode"] == "SKIP" and modes["response_body_mode"] == "FULL_DUPLEX_STREAMED"
    # FULL_DUPLEX_STREAMED requires trailers SEND (Envoy refuses the config otherwise).
    assert modes["request_trailer_mode"] == "SEND" and modes["response_trailer_mode"] == "SEND"
    assert resolve_response_header_mode("STREAMED") == "SKIP"
    assert resolve_response_header_mode("NONE") == "SEND"
    assert resolve_response_header_mode("FULL_DUPLEX_STREAMED", "SEND") == "SEND"
    sent = ext_proc_filter("picker", response_header_mode="SEND")["typed_config"]["processing_mode"]
    assert sent["response_header_mode"] == "SEND"
    # Without response body processing Envoy ends the stream with the request: in-flight
    # accounting would be released before the response starts.
    with pytest.raises(ValueError, match="SKIP needs"):
        ext_proc_filter("picker", response_body_mode="NONE", response_header_mode="SKIP")
    with pytest.raises(ValueError):
        resolve_response_header_mode("STREAMED", "skip")


def test_pool_cluster_uses_override_host_with_endpoints_else_original_dst():
    c = pool_cluster("pool", ["10.0.0.1:8000", "[fd00::1]:8000"])
    assert c["type"] == "STATIC" and c["load_balancing_policy"] == override_host_lb_policy()
    addrs = [e["endpoint"]["address"]["socket_address"] for e in c["load_assignment"]["endpoints"][0]["lb_endpoints"]]
    assert addrs == [{"address": "10.0.0.1", "port_value": 8000}, {"address": "fd00::1", "port_value": 8000}]
    assert pool_cluster("pool")["original_dst_lb_config"] == {"use_http_header": True,
                                                              "http_header_name": "x-gateway-destination-endpoint"}


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"endpoints": ["127.0.0.1:8000", "127.0.0.2:8000"]}, id="override-host"),
        pytest.param({}, id="original-dst"),
        pytest.param({"endpoints": ["127.0.0.1:8000"], "request_body_mode": "BUFFERED", "failure_mode_allow": True,
                      "response_body_mode": "STREAMED", "admin_port": 9901}, id="buffered-fail-open"),
        pytest.param({"endpoints": ["127.0.0.1:8000"], "response_header_mode": "SEND"}, id="response-headers-sent"),
        pytest.param({"endpoints": ["127.0.0.1:8000"], "response_body_mode": "NONE"}, id="no-response-body"),
        pytest.param({"endpoints": ["127.0.0.1:8000"], "report_served": True}, id="report-served"),
    ],
)
def test_envoy_accepts_the_bootstrap(tmp_path, kwargs):
    path = tmp_path / "envoy.json"
    path.write_text(json.dumps(build_bootstrap(10000, "127.0.0.1:9002", **kwargs)))
    r = subprocess.run([envoy_binary(), "--mode", "validate", "-c", str(path), "-l", "error"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_served_endpoint_header_only_on_request():
    def vhost(**kw):
        boot = build_bootstrap(10000, "127.0.0.1:9002", endpoints=["127.0.0.1:8000"], **kw)
        return boot["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]["virtual_hosts"][0]
    assert "response_headers_to_add" not in vhost()
    assert vhost(report_served=True)["response_headers_to_add"] == [
        {"header": {"key": "x-gateway-destination-endpoint-served", "value": "%UPSTREAM_HOST%"},
         "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}]
