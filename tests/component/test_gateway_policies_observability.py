"""Pool policies, Model Armor extension, metrics access, PodMonitoring, dashboard, alerts, outputs."""

from __future__ import annotations

import copy
import json

import pytest

from components.builders.model_server import RUNTIME_ANNOTATION
from components.catalog.runtimes import PRESETS
from igw.stackfile import read_stack
from tests.conftest import STACKS, k8s_object, k8s_objects, render_with, rendered


def resource_of(synthesis, kind: str, name: str):
    return next(r for r in synthesis.resources if r.inputs.get("kind") == kind and r.inputs.get("metadata", {}).get("name") == name)


# -- pool policies -------------------------------------------------------------------------------------
@pytest.mark.parametrize("stack", STACKS)
def test_every_pool_has_health_check_and_backend_policy_targeting_it(stack):
    synthesis = rendered(stack)
    pools = {o["metadata"]["name"]: o for o in k8s_objects(synthesis, "InferencePool")}
    assert pools
    for name, pool in pools.items():
        target = {"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": name}
        hc = k8s_object(synthesis, "HealthCheckPolicy", name)
        bp = k8s_object(synthesis, "GCPBackendPolicy", name)
        assert hc["spec"]["targetRef"] == target and bp["spec"]["targetRef"] == target
        http = hc["spec"]["default"]["config"]["httpHealthCheck"]
        # the model server's HTTP port and health path (vLLM: 8000 /health, the port the pool
        # sends traffic to; gRPC pools are checked on the runtime's HTTP port, e.g. TGIS 3000)
        server = next(d for d in k8s_objects(synthesis, "Deployment")
                      if d["spec"]["template"]["metadata"]["labels"].get("app") == pool["spec"]["selector"]["matchLabels"]["app"])
        container = server["spec"]["template"]["spec"]["containers"][0]
        port = next(p["containerPort"] for p in container["ports"] if p["name"] == "http")
        assert http == {"portSpecification": "USE_FIXED_PORT", "port": port, "requestPath": container["livenessProbe"]["httpGet"]["path"]}
        if pool["spec"]["appProtocol"] == "http":
            assert port == pool["spec"]["targetPorts"][0]["number"]
        assert bp["spec"]["default"] == {"timeoutSec": 300, "logging": {"enabled": True, "sampleRate": 1_000_000}}
        for kind in ("HealthCheckPolicy", "GCPBackendPolicy"):
            policy = resource_of(synthesis, kind, name)
            assert resource_of(synthesis, "InferencePool", name).urn in policy.dependencies, policy.urn


def test_backend_policy_settings_from_config():
    pools = copy.deepcopy(read_stack("dev")["inference-gateway:pools"])
    pools[0]["backend_policy"] = {
        "timeout_seconds": 600, "logging_sample_rate": 0.25, "health_check_interval_seconds": 5, "health_check_timeout_seconds": 3,
    }
    synthesis = render_with("dev", pools=pools)
    name = pools[0]["name"]
    assert k8s_object(synthesis, "GCPBackendPolicy", name)["spec"]["default"] == {
        "timeoutSec": 600, "logging": {"enabled": True, "sampleRate": 250_000},
    }
    default = k8s_object(synthesis, "HealthCheckPolicy", name)["spec"]["default"]
    assert (default["checkIntervalSec"], default["timeoutSec"]) == (5, 3)


# -- Model Armor ------------------------------------------------------------------------------------------
def test_model_armor_extension_on_external_gateway_only(prod):
    (ext,) = k8s_objects(prod, "GCPTrafficExtension")
    assert ext["spec"]["targetRefs"] == [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "external"}]
    extension = ext["spec"]["extensionChains"][0]["extensions"][0]
    assert extension["googleAPIServiceName"] == "modelarmor.us-central1.rep.googleapis.com"
    assert (extension["timeout"], extension["failOpen"]) == ("1000ms", False)
    templates = {r.inputs["templateId"]: r for r in prod.of_type("gcp:modelarmor/template:Template")}
    settings = json.loads(extension["metadata"]["model_armor_settings"])
    assert settings == [
        {
            "model": "default",
            "model_response_template_id": f"projects/igw-prod-project/locations/{templates['llm-response-guard'].inputs['location']}/templates/llm-response-guard",
            "user_prompt_template_id": f"projects/igw-prod-project/locations/{templates['llm-prompt-guard'].inputs['location']}/templates/llm-prompt-guard",
        }
    ]


def test_model_armor_gateways_override():
    armor = copy.deepcopy(read_stack("prod")["inference-gateway:model_armor"])
    armor.update(gateways=["internal"], timeout_ms=500, fail_open=True)
    synthesis = render_with("prod", model_armor=armor)
    (ext,) = k8s_objects(synthesis, "GCPTrafficExtension")
    assert ext["metadata"]["name"] == "internal-model-armor"
    extension = ext["spec"]["extensionChains"][0]["extensions"][0]
    assert (extension["timeout"], extension["failOpen"]) == ("500ms", True)


def test_no_model_armor_without_config(dev):
    assert k8s_objects(dev, "GCPTrafficExtension") == []


# -- metrics access and PodMonitoring ------------------------------------------------------------------------
def test_metrics_reader_rbac_is_seed_001(dev):
    role = k8s_object(dev, "ClusterRole", "inference-gateway-metrics-reader")
    assert role["rules"] == [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]
    binding = k8s_object(dev, "ClusterRoleBinding", "inference-gateway-sa-metrics-reader-role-binding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "inference-gateway-sa-metrics-reader", "namespace": "igw-dev"}]
    assert binding["roleRef"] == {"kind": "ClusterRole", "name": "inference-gateway-metrics-reader", "apiGroup": "rbac.authorization.k8s.io"}
    secret = k8s_object(dev, "Secret", "inference-gateway-sa-metrics-reader-secret")
    assert secret["type"] == "kubernetes.io/service-account-token"
    assert secret["metadata"]["annotations"] == {"kubernetes.io/service-account.name": "inference-gateway-sa-metrics-reader"}
    read = k8s_object(dev, "ClusterRole", "inference-gateway-sa-metrics-reader-secret-read")
    assert read["rules"] == [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch"], "resourceNames": ["inference-gateway-sa-metrics-reader-secret"]}
    ]
    collector = k8s_object(dev, "ClusterRoleBinding", "gmp-system:collector:inference-gateway-sa-metrics-reader-secret-read")
    assert collector["subjects"] == [{"name": "collector", "namespace": "gmp-system", "kind": "ServiceAccount"}]


def _selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


@pytest.mark.parametrize("stack", STACKS)
def test_pod_monitorings_select_the_model_servers_and_pickers(stack):
    synthesis = rendered(stack)
    deployments = {d["metadata"]["name"]: d for d in k8s_objects(synthesis, "Deployment")}
    monitorings = {m["metadata"]["name"]: m for m in k8s_objects(synthesis, "PodMonitoring")}
    for pool in k8s_objects(synthesis, "InferencePool"):
        name = pool["metadata"]["name"]
        picker = monitorings[f"{name}-epp"]
        pod_labels = deployments[f"{name}-epp"]["spec"]["template"]["metadata"]["labels"]
        assert _selects(picker["spec"]["selector"]["matchLabels"], pod_labels), resource_of(synthesis, "PodMonitoring", f"{name}-epp").urn
        ports = {p["containerPort"] for c in deployments[f"{name}-epp"]["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])}
        assert picker["spec"]["endpoints"][0]["port"] in ports
    for name, dep in deployments.items():
        if name.endswith("-epp"):
            continue
        runtime = (dep["spec"]["template"]["metadata"].get("annotations") or {}).get(RUNTIME_ANNOTATION, "vllm")
        if runtime == "external" or PRESETS[runtime].metrics_path is None:  # Caikit, egress proxies: nothing to scrape
            assert name not in monitorings
            continue
        pm = monitorings[name]
        assert _selects(pm["spec"]["selector"]["matchLabels"], dep["spec"]["template"]["metadata"]["labels"])
        endpoint = pm["spec"]["endpoints"][0]
        assert (endpoint["path"], endpoint["interval"]) == ("/metrics", "15s")
        assert endpoint["authorization"]["credentials"]["secret"] == {"name": "inference-gateway-sa-metrics-reader-secret", "key": "token"}


# -- dashboard and alerts -------------------------------------------------------------------------------------
def test_dashboard_is_promql_over_this_cluster(prod):
    dashboard = prod.one("gcp:monitoring/dashboard:Dashboard")
    body = json.loads(dashboard.inputs["dashboardJson"])
    queries = [ds["timeSeriesQuery"]["prometheusQuery"] for t in body["mosaicLayout"]["tiles"] for ds in t["widget"]["xyChart"]["dataSets"]]
    assert len(body["mosaicLayout"]["tiles"]) == 11
    assert all('cluster="igw-prod-gke"' in q for q in queries), dashboard.urn


def test_alert_policies(prod):
    policies = {r.inputs["displayName"]: r for r in prod.of_type("gcp:monitoring/alertPolicy:AlertPolicy")}
    assert sorted(policies) == sorted(
        f"{n} (igw-prod)" for n in (
            "Model servers saturated: waiting queue", "Model servers saturated: KV cache",
            "Endpoint picker unavailable", "Endpoint picker has no ready model servers",
        )
    )
    queue = policies["Model servers saturated: waiting queue (igw-prod)"].inputs["conditions"][0]["conditionPrometheusQueryLanguage"]
    assert queue["duration"] == "600s" and queue["query"].endswith("> 10")


def test_notification_channels_from_config():
    obs = {"notification_emails": ["oncall@example.com"], "notification_channels": ["projects/p/notificationChannels/123"]}
    synthesis = render_with("dev", observability=obs)
    (channel,) = synthesis.of_type("gcp:monitoring/notificationChannel:NotificationChannel")
    assert channel.inputs["type"] == "email" and channel.inputs["labels"] == {"email_address": "oncall@example.com"}
    for policy in synthesis.of_type("gcp:monitoring/alertPolicy:AlertPolicy"):
        assert policy.inputs["notificationChannels"][0] == "projects/p/notificationChannels/123", policy.urn
        assert len(policy.inputs["notificationChannels"]) == 2


# -- outputs ---------------------------------------------------------------------------------------------------
def test_outputs_addresses_urls_and_curl_per_model(prod):
    out = prod.outputs
    assert out["gatewayAddresses"]["external"] == "203.0.113.20"
    assert out["gatewayAddresses"]["internal"].startswith("assigned by GKE: kubectl get gateway/internal")
    assert out["gatewayUrls"]["external"] == {"http": "http://203.0.113.20", "https": "https://llm.example.com"}
    models = out["modelEndpoints"]
    assert set(models) == {"meta-llama/Llama-3.1-8B-Instruct", "food-review", "cad-fabricator", "meta-llama/Llama-3.1-70B-Instruct"}
    assert models["food-review"]["url"] == "https://llm.example.com/v1/chat/completions"
    assert '"model":"food-review"' in models["food-review"]["curl"]
    assert '-H "Authorization: Bearer ${API_KEY}"' in models["food-review"]["curl"]  # the pool requires API keys
    large = models["meta-llama/Llama-3.1-70B-Instruct"]
    assert large["gateway"] == "internal" and "-H 'x-model-family: llama3-70b'" in large["curl"]
    assert large["curl"].startswith("GATEWAY_IP=$(kubectl get gateway/internal")
    served = out["servedModelEndpoints"]
    assert served["internal/challenger"]["url"] == "http://${GATEWAY_IP}/served-models/challenger/invocations"
    assert served["external/challenger"]["target"] == "food-review-v2"
    assert out["dashboardUrl"].startswith("https://console.cloud.google.com/monitoring/dashboards/")
