"""The reference-EPP strategy built from the documented facts, checked offline: its config, its
endpoints file, the Envoy shape it needs (validated by the real Envoy), and loud failures."""

from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path

import pytest

from benchmarks import failures, report, upstream_epp
from benchmarks.scenario import Strategy
from benchmarks.stacks import Gateway, NotRun
from endpoint_picker.envoy_bootstrap import envoy_binary


def test_epp_config_is_file_discovery_the_metrics_layer_and_the_default_profile(tmp_path):
    cfg = upstream_epp.epp_config(tmp_path / "eps.yaml")
    assert cfg == {
        "apiVersion": "llm-d.ai/v1alpha1",
        "kind": "EndpointPickerConfig",
        "plugins": [
            {"name": "file-discovery", "type": "file-discovery",
             "parameters": {"path": str(tmp_path / "eps.yaml"), "watchFile": True}},
            {"name": "metrics-data-source", "type": "metrics-data-source"},
            {"name": "core-metrics-extractor", "type": "core-metrics-extractor"},
            {"name": "queue-scorer", "type": "queue-scorer"},
            {"name": "kv-cache-utilization-scorer", "type": "kv-cache-utilization-scorer"},
            {"name": "prefix-cache-scorer", "type": "prefix-cache-scorer"},
            {"name": "max-score-picker", "type": "max-score-picker"},
            {"name": "single-profile-handler", "type": "single-profile-handler"},
        ],
        "schedulingProfiles": [{"name": "default", "plugins": [
            {"pluginRef": "queue-scorer", "weight": 2.0},
            {"pluginRef": "kv-cache-utilization-scorer", "weight": 2.0},
            {"pluginRef": "prefix-cache-scorer", "weight": 3.0},
            {"pluginRef": "max-score-picker"},
        ]}],
        "dataLayer": {"discovery": {"pluginRef": "file-discovery"},
                      "sources": [{"pluginRef": "metrics-data-source",
                                   "extractors": [{"pluginRef": "core-metrics-extractor"}]}]},
    }


def test_weights_come_from_a_picker_style_config_and_unknown_scorers_are_refused(tmp_path):
    w = upstream_epp.weights_from({"scheduling": {"scorers": [{"type": "queue-scorer", "weight": 1},
                                                              {"type": "prefix-cache-scorer", "weight": 5}]}})
    prof = upstream_epp.epp_config(tmp_path / "e", w)["schedulingProfiles"][0]["plugins"]
    assert prof[:2] == [{"pluginRef": "queue-scorer", "weight": 1.0}, {"pluginRef": "prefix-cache-scorer", "weight": 5.0}]
    assert upstream_epp.weights_from({}) is None
    with pytest.raises(ValueError, match=r"unknown scorers \['inflight-load-scorer'\]"):
        upstream_epp.epp_config(tmp_path / "e", {"inflight-load-scorer": 1})


def test_endpoints_file_has_ipv4_addresses_and_string_ports():
    doc = upstream_epp.endpoints_document(["127.0.40.30:8000", "10.0.0.2:9000"])
    assert doc == {"endpoints": [
        {"name": "pod-0", "namespace": "default", "address": "127.0.40.30", "port": "8000"},
        {"name": "pod-1", "namespace": "default", "address": "10.0.0.2", "port": "9000"}]}
    with pytest.raises(ValueError, match="literal IPv4 addresses only"):
        upstream_epp.endpoints_document(["[::1]:8000"])
    with pytest.raises(ValueError, match="port in 1-65535"):
        upstream_epp.endpoints_document(["10.0.0.1:0"])


def test_envoy_shape_is_original_dst_with_response_headers_sent_and_envoy_accepts_it(tmp_path):
    boot = upstream_epp.envoy_bootstrap(40123, "127.0.40.1:40124", "127.0.40.1")
    clusters = {c["name"]: c for c in boot["static_resources"]["clusters"]}
    pool = next(c for c in clusters.values() if c["type"] == "ORIGINAL_DST")
    assert pool["lb_policy"] == "CLUSTER_PROVIDED"
    assert pool["original_dst_lb_config"] == {"use_http_header": True, "http_header_name": "x-gateway-destination-endpoint"}
    assert not any(c["type"] == "STATIC" and "load_balancing_policy" in c for c in clusters.values())
    hcm = boot["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    mode = hcm["http_filters"][0]["typed_config"]["processing_mode"]
    assert mode == {"request_header_mode": "SEND", "request_body_mode": "FULL_DUPLEX_STREAMED", "request_trailer_mode": "SEND",
                    "response_header_mode": "SEND", "response_body_mode": "FULL_DUPLEX_STREAMED",
                    "response_trailer_mode": "SEND"}
    assert hcm["http_filters"][0]["typed_config"]["failure_mode_allow"] is False
    path = tmp_path / "envoy.json"
    path.write_text(json.dumps(boot))
    r = subprocess.run([envoy_binary(), "--mode", "validate", "-c", str(path), "-l", "error"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_command_line_and_template(monkeypatch, tmp_path):
    kw = dict(pool="p", config_file=tmp_path / "c.yaml", endpoints_file=tmp_path / "e.yaml", grpc_port=1,
              health_port=2, metrics_port=3)
    monkeypatch.delenv("IGW_UPSTREAM_EPP_ARGS", raising=False)
    assert upstream_epp.command("/bin/epp", **kw) == [
        "/bin/epp", "--pool-name", "p", "--pool-namespace", "default", "--config-file", str(tmp_path / "c.yaml"),
        "--grpc-port", "1", "--grpc-health-port", "2", "--metrics-port", "3", "--secure-serving=false", "--tracing=false"]
    monkeypatch.setenv("IGW_UPSTREAM_EPP_ARGS", "--config-file {config_file} -v=4")
    assert upstream_epp.command("/bin/epp", **kw)[1:] == ["--config-file", str(tmp_path / "c.yaml"), "-v=4"]


def test_without_a_binary_the_strategy_is_not_run(monkeypatch):
    monkeypatch.delenv("IGW_UPSTREAM_EPP", raising=False)
    with pytest.raises(NotRun, match="IGW_UPSTREAM_EPP"):
        Gateway(Strategy(name="u", type="upstream-epp"), ["127.0.40.30:40500"], {})


def test_a_binary_that_dies_fails_loudly_with_its_log(monkeypatch, tmp_path):
    fake = tmp_path / "epp"
    fake.write_text("#!/bin/sh\necho 'flag provided but not defined: -tracing' >&2\nexit 2\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("IGW_UPSTREAM_EPP", str(fake))
    with pytest.raises(RuntimeError, match=r"(?s)upstream-epp exited with code 2.*flag provided but not defined"):
        Gateway(Strategy(name="u", type="upstream-epp"), ["127.0.40.30:40500"], {})


def test_runs_with_errors_are_failures_not_zeros():
    assert failures.check(3042, 3042, {"503": 3042}) == "all 3042 requests failed: {'503': 3042}"
    assert failures.check(1000, 11).startswith("11 of 1000 requests failed")
    assert failures.check(1000, 10) is None and failures.check(0, 0) == "no request was sent"
    assert failures.quality({"requests": 200, "ok": 150, "status_counts": {"200": 150, "503": 50}}).startswith("50 of 200")


def test_the_report_says_failed():
    doc = {"scenario": "s", "description": "", "time_scale": 4.0, "result": {
        "workload": {"requests_planned": 10, "rate_sim_rps": 1, "rate_real_rps": 0.25, "duration_sim_s": 10,
                     "mean_prompt_tokens": 10, "mean_output_tokens": 10},
        "runs": {}, "not_run": {}, "failed": {"upstream-epp": "all 10 requests failed: {'503': 10}"}}}
    assert "| upstream-epp | **FAILED**: all 10 requests failed: {'503': 10} |" in report.quality_markdown(doc)


def test_epp_ports_are_free_on_every_address_not_only_on_ours(monkeypatch):
    """The EPP binds `:port`; a client socket holding the port on 127.0.0.1 made it exit 1 silently."""
    import itertools
    import socket

    from endpoint_picker import loopback as net
    from benchmarks.stacks import wildcard_free_port

    with socket.socket() as srv, socket.socket() as client:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        client.connect(srv.getsockname())            # an ephemeral local port, as a load generator's
        held = client.getsockname()[1]
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            spare = probe.getsockname()[1]
        monkeypatch.setenv("IGW_PORT_RANGE", f"{min(held, spare)}-{max(held, spare)}")
        monkeypatch.setenv("IGW_LOOPBACK_NET", "127.0.191")
        monkeypatch.setattr(net, "_handed_out", set())
        monkeypatch.setattr(net, "_cursors", {net.port_range(): itertools.cycle([held, spare])})
        assert net.local_host() == "127.0.191.1"
        assert net.free_port() == held               # free on our loopback address...
        monkeypatch.setattr(net, "_handed_out", set())
        monkeypatch.setattr(net, "_cursors", {net.port_range(): itertools.cycle([held, spare])})
        assert wildcard_free_port() == spare         # ...but not on every address
