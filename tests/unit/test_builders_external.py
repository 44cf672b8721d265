"""External models' egress proxy builders: the exact objects, and the rendered Envoy config
accepted by the real Envoy (``envoy --mode validate``) once localized the way `igw up` runs it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml
from endpoint_picker.envoy_bootstrap import envoy_binary

from components.builders import egress_proxy as proxy
from components.builders import external_model as b
from components.builders.inference_pool import picker_config
from components.catalog.providers import egress_preset
from components.config.external import ExternalModelConfig
from components.config.serving import InferencePoolConfig, ServedModelConfig
from igw.local.egress import localize, localize_sds

KEY = "{{secrets/openai/api_key}}"


def model(**external) -> ServedModelConfig:
    ext = {"provider": "openai", "name": "gpt-4o", "task": "llm/v1/chat", "api_key_secret": KEY, **external}
    return ServedModelConfig(name="gpt-4o-chat", pool="openai-chat", external=ExternalModelConfig(**ext),
                             rate_limits=[{"calls": 5, "key": "endpoint"}])


def hcm(cfg: dict) -> dict:
    return cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]


def test_the_proxy_routes_the_task_only_and_rewrites_to_the_provider():
    vhost = hcm(proxy.envoy_config("openai-chat-egress", "gpt-4o-chat", model().external))["route_config"]["virtual_hosts"][0]
    assert vhost["routes"] == [
        {"match": {"path": "/healthz"}, "direct_response": {"status": 200, "body": {"inline_string": "ok\n"}}},
        {"match": {"path": "/v1/chat/completions"}, "route": {
            "cluster": "provider", "prefix_rewrite": "/v1/chat/completions", "host_rewrite_literal": "api.openai.com",
            "timeout": "300s", "retry_policy": {"retry_on": "connect-failure,refused-stream", "num_retries": 2}}},
    ]
    assert "authorization" not in vhost["request_headers_to_remove"]  # overwritten by the injector, after the filters
    assert {"x-api-key", "openai-organization", "cookie", "x-forwarded-for", "x-envoy-original-path",
            "x-llm-d-model-name-rewrite"} <= set(vhost["request_headers_to_remove"])
    assert vhost["response_headers_to_remove"] == ["set-cookie", "openai-organization", "openai-project"]


def test_an_openai_compatible_base_path_and_port():
    ext = model(provider="openai-compatible", api_base="https://llm.example.com:8443/openai/v1", task="llm/v1/embeddings").external
    cfg = proxy.envoy_config("e", "emb", ext)
    route = hcm(cfg)["route_config"]["virtual_hosts"][0]["routes"][1]
    assert (route["match"], route["route"]["prefix_rewrite"], route["route"]["host_rewrite_literal"]) == (
        {"path": "/v1/embeddings"}, "/openai/v1/embeddings", "llm.example.com:8443")
    cluster = cfg["static_resources"]["clusters"][0]
    assert cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"] == {
        "address": "llm.example.com", "port_value": 8443}


def test_the_key_is_injected_from_the_mounted_file():
    filters = hcm(proxy.envoy_config("openai-chat-egress", "gpt-4o-chat", model().external))["http_filters"]
    assert [f["name"] for f in filters] == ["envoy.filters.http.lua", "envoy.filters.http.credential_injector", "envoy.filters.http.router"]
    injector = filters[1]["typed_config"]
    assert (injector["overwrite"], injector["allow_request_without_credential"]) == (True, False)
    assert injector["credential"]["typed_config"] == {
        "@type": "type.googleapis.com/envoy.extensions.http.injected_credentials.generic.v3.Generic",
        "header": "Authorization", "header_value_prefix": "Bearer ",
        "credential": {"name": "provider-key", "sds_config": {"path_config_source": {
            "path": "/etc/envoy/provider-key-sds.yaml", "watched_directory": {"path": "/var/run/secrets/provider"}}}}}
    assert proxy.sds_config() == {"resources": [{
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret", "name": "provider-key",
        "generic_secret": {"secret": {"filename": "/var/run/secrets/provider/api-key"}}}]}
    assert filters[2]["typed_config"]["suppress_envoy_headers"] is True


def test_tls_to_the_provider_host_is_verified():
    cluster = proxy.envoy_config("x", "gpt-4o-chat", model().external)["static_resources"]["clusters"][0]
    tls = cluster["transport_socket"]["typed_config"]
    assert tls["sni"] == "api.openai.com"
    assert tls["common_tls_context"]["validation_context"] == {
        "trusted_ca": {"filename": "/etc/ssl/certs/ca-certificates.crt"},
        "match_typed_subject_alt_names": [{"san_type": "DNS", "matcher": {"exact": "api.openai.com"}}]}
    assert (cluster["type"], cluster["connect_timeout"]) == ("LOGICAL_DNS", "5s")
    ip = proxy.envoy_config("x", "m", model(provider="openai-compatible", api_base="https://10.9.8.7/v1").external)
    san = ip["static_resources"]["clusters"][0]["transport_socket"]["typed_config"]["common_tls_context"]["validation_context"]
    assert san["match_typed_subject_alt_names"] == [{"san_type": "IP_ADDRESS", "matcher": {"exact": "10.9.8.7"}}]


def test_the_proxys_own_replies_have_the_gateway_error_shape():
    mappers = hcm(proxy.envoy_config("x", "gpt-4o-chat", model().external))["local_reply_config"]["mappers"]
    assert [(m["status_code"], m["body_format_override"]["json_format"]["error"]["code"],
             m["body_format_override"]["json_format"]["error"]["message"]) for m in mappers] == [
        (404, "route-not-found", "this endpoint serves only POST /v1/chat/completions"),
        (504, "provider-timeout", "the provider openai (api.openai.com) did not answer in time"),
        (503, "provider-unavailable", "the provider openai (api.openai.com) could not be reached (%RESPONSE_CODE_DETAILS%)"),
    ]
    lua = proxy.lua_auth_filter("gpt-4o-chat", "openai")
    assert proxy.auth_failure_body("gpt-4o-chat", "openai") in lua
    assert 'if status == "401" or status == "403" then' in lua


def test_the_rendered_config_runs_in_real_envoy(tmp_path: Path):
    cfg = proxy.envoy_config("openai-chat-egress", "gpt-4o-chat", model().external)
    key = tmp_path / "key" / "api-key"
    key.parent.mkdir()
    key.write_text("sk-test")
    (tmp_path / "ca.pem").write_text(Path("/etc/ssl/certs/ca-certificates.crt").read_text())
    (tmp_path / "sds.yaml").write_text(yaml.safe_dump(localize_sds(proxy.sds_config(), key)))
    local = localize(cfg, listen=("127.0.0.1", 0), admin_port=0, provider=("127.0.0.1", 8443), ca_file=tmp_path / "ca.pem",
                     sds_path=tmp_path / "sds.yaml", key_dir=key.parent)
    (tmp_path / "envoy.yaml").write_text(yaml.safe_dump(local))
    r = subprocess.run([envoy_binary(), "--mode", "validate", "-c", str(tmp_path / "envoy.yaml")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    # localize changed only what a machine without the provider must
    assert local["static_resources"]["clusters"][0]["transport_socket"]["typed_config"]["sni"] == "api.openai.com"
    assert hcm(local)["route_config"] == hcm(cfg)["route_config"]


def test_deployment_holds_the_key_as_a_file_and_never_drops_capacity():
    dep = b.deployment(model(), "igw", "digest")
    pod = dep["spec"]["template"]["spec"]
    assert dep["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    assert pod["volumes"] == [
        {"name": "config", "configMap": {"name": "openai-chat-egress"}},
        {"name": "provider-key", "secret": {"secretName": "openai-chat-provider-key", "defaultMode": 0o440,
                                            "items": [{"key": "api-key", "path": "api-key"}]}},
    ]
    c = pod["containers"][0]
    assert "env" not in c
    assert c["securityContext"] == {
        "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True, "runAsUser": 65532,
        "runAsGroup": 65532, "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}
    assert (pod["automountServiceAccountToken"], pod["serviceAccountName"]) == (False, "openai-chat-egress")
    assert dep["spec"]["template"]["metadata"]["annotations"] == {
        "inference-gateway.dev/runtime": "external", "inference-gateway.dev/models": "gpt-4o",
        "inference-gateway.dev/provider": "openai", "inference-gateway.dev/provider-url": "https://api.openai.com/v1",
        "inference-gateway.dev/task": "llm/v1/chat", "inference-gateway.dev/endpoint": "gpt-4o-chat",
        "inference-gateway.dev/config-digest": "digest"}


def test_a_secret_manager_key_is_mounted_by_gkes_add_on():
    m = model(api_key_secret="projects/p-1/secrets/openai-key/versions/2")
    assert b.secret_provider_class("openai-chat", "igw", m.external.secret.resource) == {
        "apiVersion": "secrets-store.csi.x-k8s.io/v1", "kind": "SecretProviderClass",
        "metadata": {"name": "openai-chat-provider-key", "namespace": "igw", "labels": {"app": "openai-chat-egress"}},
        "spec": {"provider": "gke", "parameters": {
            "secrets": '- resourceName: "projects/p-1/secrets/openai-key/versions/2"\n  path: "api-key"\n'}}}
    assert b.deployment(m, "igw", "d")["spec"]["template"]["spec"]["volumes"][1] == {
        "name": "provider-key", "csi": {"driver": "secrets-store-gke.csi.k8s.io", "readOnly": True,
                                        "volumeAttributes": {"secretProviderClass": "openai-chat-provider-key"}}}


def test_egress_only_to_the_provider_host():
    np = b.network_policy("openai-chat", "igw", ["10.129.0.0/23"], model().external)
    assert np["spec"] == {
        "podSelector": {"matchLabels": {"app": "openai-chat-egress"}},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [{"from": [{"ipBlock": {"cidr": "10.129.0.0/23"}}], "ports": [{"protocol": "TCP", "port": 8000}]},
                    {"from": [{"ipBlock": {"cidr": "35.191.0.0/16"}}, {"ipBlock": {"cidr": "130.211.0.0/22"}}],
                     "ports": [{"protocol": "TCP", "port": 8000}]}],
        "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}],
    }
    assert b.fqdn_network_policy("openai-chat", "igw", model().external) == {
        "apiVersion": "networking.gke.io/v1alpha1", "kind": "FQDNNetworkPolicy",
        "metadata": {"name": "openai-chat-egress-provider", "namespace": "igw", "labels": {"app": "openai-chat-egress"}},
        "spec": {"podSelector": {"matchLabels": {"app": "openai-chat-egress"}},
                 "egress": [{"matches": [{"name": "api.openai.com"}], "ports": [{"protocol": "TCP", "port": 443}]}]}}
    ip = model(provider="openai-compatible", api_base="https://10.9.8.7:9443/v1").external
    assert b.fqdn_network_policy("p", "igw", ip) is None
    assert b.network_policy("p", "igw", [], ip)["spec"]["egress"][1] == {
        "to": [{"ipBlock": {"cidr": "10.9.8.7/32"}}], "ports": [{"protocol": "TCP", "port": 9443}]}


def test_clients_call_the_endpoint_the_provider_gets_its_model():
    assert b.model_rewrite(model(), "igw")["spec"] == {
        "poolRef": {"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": "openai-chat"},
        "rules": [{"matches": [{"model": {"type": "Exact", "value": "gpt-4o-chat"}}],
                   "targets": [{"modelRewrite": "gpt-4o", "weight": 100}]}]}
    same = ServedModelConfig(name="gpt-4o", pool="p", external=model().external)
    assert b.model_rewrite(same, "igw") is None
    assert b.pod_disruption_budget("openai-chat", "igw", 1) is None
    assert b.pod_disruption_budget("openai-chat", "igw", 2)["spec"] == {
        "maxUnavailable": 1, "selector": {"matchLabels": {"app": "openai-chat-egress"}}}


def test_the_picker_of_an_external_pool_serves_the_endpoint_only():
    pool = InferencePoolConfig(name="openai-chat")
    m = model()
    cfg = picker_config(pool, None, egress_preset("llm/v1/chat"), [m])
    assert cfg["models"] == {"served": ["gpt-4o", "gpt-4o-chat"], "reject_unknown": True, "deployed": {"gpt-4o-chat": "gpt-4o"}}
    assert cfg["scrape"] == {"engine": "none", "path": "/metrics"}
    assert cfg["scheduling"]["scorers"] == [{"type": "inflight-load-scorer", "weight": 2.0}]
    assert cfg["rate_limits"] == [{"key": "endpoint", "calls": 5, "renewal_period": "minute", "model": "gpt-4o-chat"}]
    assert pool.failure_mode == "FailClose"
