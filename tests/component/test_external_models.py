"""The external stack under the mock engine: what the program creates for external models, and
that no provider key reaches the state in plaintext (the engine records inputs as the real
engine stores them: secrets masked)."""

from __future__ import annotations

import json

from tests.conftest import k8s_object, rendered

PLACEHOLDER_CIPHERTEXT = "c2VlZC1leHRlcm5hbC1vcGVuYWkta2V5LXBsYWNlaG9sZGVy"


def test_provider_keys_are_secret_in_state():
    s = rendered("external")
    dump = json.dumps([r.__dict__ for r in s.resources], default=str)
    assert PLACEHOLDER_CIPHERTEXT not in dump
    secret = k8s_object(s, "Secret", "openai-chat-provider-key")
    assert secret["stringData"] == {"api-key": "[secret]"}
    egress = k8s_object(s, "Deployment", "openai-chat-egress")
    assert "env" not in egress["spec"]["template"]["spec"]["containers"][0]


def test_the_cluster_enables_what_external_models_need():
    s = rendered("external")
    cluster = s.one("gcp:container/cluster:Cluster").inputs
    assert (cluster["enableFqdnNetworkPolicy"], cluster["secretManagerConfig"]) == (True, {"enabled": True})
    assert cluster["datapathProvider"] == "ADVANCED_DATAPATH"
    apis = {r.inputs["service"] for r in s.resources if r.type == "gcp:projects/service:Service"}
    assert "secretmanager.googleapis.com" in apis
    assert "enableFqdnNetworkPolicy" not in rendered("dev").one("gcp:container/cluster:Cluster").inputs


def test_a_secret_manager_key_is_read_by_the_proxy_identity_only():
    s = rendered("external")
    member = s.one("gcp:secretmanager/secretIamMember:SecretIamMember").inputs
    assert {k: member[k] for k in ("project", "secretId", "role")} == {
        "project": "igw-external-dev", "secretId": "anthropic-api-key", "role": "roles/secretmanager.secretAccessor"}
    wi = [r.inputs for r in s.resources if r.type == "gcp:serviceaccount/iAMMember:IAMMember"
          and r.inputs.get("role") == "roles/iam.workloadIdentityUser"]
    assert {"serviceAccount:igw-external-dev.svc.id.goog[igw-ext/claude-chat-egress]"} <= {w["member"] for w in wi}
    spc = k8s_object(s, "SecretProviderClass", "claude-chat-provider-key")
    assert spc["spec"]["parameters"]["secrets"] == (
        '- resourceName: "projects/igw-external-dev/secrets/anthropic-api-key/versions/latest"\n  path: "api-key"\n')
    assert not [o for o in s.kubernetes_objects() if o["kind"] == "Secret" and o["metadata"]["name"] == "claude-chat-provider-key"]


def test_external_endpoints_route_through_their_pools_and_pickers():
    s = rendered("external")
    pool = k8s_object(s, "InferencePool", "openai-chat")
    assert pool["spec"]["selector"] == {"matchLabels": {"app": "openai-chat-egress"}}
    assert pool["spec"]["endpointPickerRef"]["failureMode"] == "FailClose"
    assert pool["spec"]["targetPorts"] == [{"number": 8000}]
    route = k8s_object(s, "HTTPRoute", "inference-gateway-openai-chat")
    assert [(r["matches"][0]["path"]["value"], r["filters"][0]["urlRewrite"]["path"]["replaceFullPath"]) for r in route["spec"]["rules"]] == [
        ("/openai-chat/v1/chat/completions", "/v1/chat/completions")]
    hc = k8s_object(s, "HealthCheckPolicy", "openai-chat")["spec"]["default"]["config"]["httpHealthCheck"]
    assert (hc["port"], hc["requestPath"]) == (8000, "/healthz")
    assert k8s_object(s, "InferenceObjective", "gpt-4o-chat")["metadata"]["annotations"]["inference-gateway.dev/tags"] == '{"team": "gen-ai"}'
