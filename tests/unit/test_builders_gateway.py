"""Gateway, GKE policy, Model Armor, metrics-access, dashboard and endpoint builders (no Pulumi)."""

from __future__ import annotations

import json

import pytest

from components.builders import dashboard as dash
from components.builders import endpoints
from components.builders import gateway as gw
from components.builders import metrics_access as ma
from components.builders import model_armor_extension as armor
from components.catalog.names import template_name
from components.builders import policies
from components.config import GatewayConfig, ModelArmorConfig
from components.config.routing import guarded_gateways
from components.stack_config import parse_stack_config
from components.config.serving import BackendPolicyConfig
from tests.crd_schema import validate_with_upstream


def gateway(**kw) -> GatewayConfig:
    return GatewayConfig.model_validate({"name": "edge", **kw})


# -- Gateway ------------------------------------------------------------------------------------
def test_default_gateway_is_seed_001():
    assert gw.gateway_manifest(gateway(), "default", None) == {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "edge", "namespace": "default", "labels": {"inference-gateway/gateway": "edge"}},
        "spec": {
            "gatewayClassName": "gke-l7-regional-external-managed",
            "listeners": [{"name": "http", "port": 80, "protocol": "HTTP", "allowedRoutes": {"namespaces": {"from": "Same"}}}],
        },
    }


def test_https_listeners_secret_and_certificate_manager():
    g = gateway(
        **{"class": "gke-l7-rilb"},
        listeners=[
            {"name": "https", "protocol": "HTTPS", "port": 443, "hostname": "a.example.com", "tls": {"certificate_secret": "a-tls"}},
            {"name": "https-b", "protocol": "HTTPS", "port": 443, "hostname": "b.example.com",
             "tls": {"certificate_manager_certificates": ["b-cert", "b-cert-ecdsa"]}},
        ],
        static_address="edge-ip",
    )
    m = gw.gateway_manifest(g, "default", gw.address_name("igw", g))
    a, b = m["spec"]["listeners"]
    assert a["tls"] == {"mode": "Terminate", "certificateRefs": [{"group": "", "kind": "Secret", "name": "a-tls"}]}
    assert b["tls"] == {"mode": "Terminate", "options": {"networking.gke.io/cert-manager-certs": "b-cert,b-cert-ecdsa"}}
    assert m["spec"]["addresses"] == [{"type": "NamedAddress", "value": "edge-ip"}]
    assert "annotations" not in m["metadata"]  # certmap is the global classes' mechanism
    assert validate_with_upstream(m) == []


def test_created_address_name():
    assert gw.address_name("igw-prod", gateway(create_address=True)) == "igw-prod-edge-ip"
    assert gw.address_name("igw-prod", gateway()) is None


def test_gateway_policy_only_for_internal_global_access():
    assert gw.gateway_policy_manifest(gateway(), "default") is None
    assert gw.gateway_policy_manifest(gateway(**{"class": "gke-l7-rilb"}), "default") is None
    p = gw.gateway_policy_manifest(gateway(**{"class": "gke-l7-rilb"}, global_access=True), "default")
    assert p["spec"] == {
        "default": {"allowGlobalAccess": True},
        "targetRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "edge"},
    }
    assert validate_with_upstream(p) == []


# -- pool policies ----------------------------------------------------------------------------------
def test_health_check_policy_fixed_port_runtime_path():
    hc = policies.health_check_policy("pool", "default", policies.HealthProbe(8000, "/health"), BackendPolicyConfig())
    assert hc["spec"] == {
        "targetRef": {"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": "pool"},
        "default": {
            "checkIntervalSec": 2,
            "timeoutSec": 2,
            "logConfig": {"enabled": True},
            "config": {"type": "HTTP", "httpHealthCheck": {"portSpecification": "USE_FIXED_PORT", "port": 8000, "requestPath": "/health"}},
        },
    }
    assert validate_with_upstream(hc) == []


def test_health_check_timeout_above_interval_is_rejected_by_the_crd():
    hc = policies.health_check_policy(
        "pool", "default", policies.HealthProbe(8000, "/health"),
        BackendPolicyConfig(health_check_interval_seconds=2, health_check_timeout_seconds=5),
    )
    assert validate_with_upstream(hc) != []


@pytest.mark.parametrize(("fraction", "rate"), [(1.0, 1_000_000), (0.1, 100_000), (0.000001, 1)])
def test_backend_policy_sample_rate_is_scaled_to_crd_integer(fraction, rate):
    bp = policies.backend_policy("pool", "default", BackendPolicyConfig(logging_sample_rate=fraction))
    assert bp["spec"]["default"] == {"timeoutSec": 300, "logging": {"enabled": True, "sampleRate": rate}}
    assert validate_with_upstream(bp) == []


def test_backend_policy_zero_sample_rate_disables_logging():
    bp = policies.backend_policy("pool", "default", BackendPolicyConfig(logging_sample_rate=0, timeout_seconds=600))
    assert bp["spec"]["default"] == {"timeoutSec": 600, "logging": {"enabled": False}}


# -- Model Armor ----------------------------------------------------------------------------------------
MA = ModelArmorConfig.model_validate(
    {
        "templates": [{"id": "prompt"}, {"id": "response"}],
        "guards": [
            {"model": "default", "prompt_template": "prompt", "response_template": "response"},
            {"model": "food-review", "prompt_template": "prompt", "response_template": "prompt"},
        ],
        "timeout_ms": 500,
        "fail_open": True,
    }
)
NAMES = {t: template_name("proj", "us-central1", t) for t in ("prompt", "response")}


def test_model_armor_settings_is_a_json_array_string():
    settings = armor.model_armor_settings(MA, NAMES)
    assert isinstance(settings, str)
    assert json.loads(settings) == [
        {
            "model": "default",
            "model_response_template_id": "projects/proj/locations/us-central1/templates/response",
            "user_prompt_template_id": "projects/proj/locations/us-central1/templates/prompt",
        },
        {
            "model": "food-review",
            "model_response_template_id": "projects/proj/locations/us-central1/templates/prompt",
            "user_prompt_template_id": "projects/proj/locations/us-central1/templates/prompt",
        },
    ]


def test_traffic_extension_shape():
    ext = armor.traffic_extension("edge", "default", "us-central1", MA, "[]")
    assert ext["spec"] == {
        "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "edge"}],
        "extensionChains": [
            {
                "name": "model-armor",
                "matchCondition": {"celExpressions": [{"celMatcher": 'request.path.startsWith("/")'}]},
                "extensions": [
                    {
                        "name": "model-armor",
                        "googleAPIServiceName": "modelarmor.us-central1.rep.googleapis.com",
                        "supportedEvents": ["RequestHeaders", "RequestBody", "RequestTrailers", "ResponseHeaders", "ResponseBody", "ResponseTrailers"],
                        "timeout": "500ms",
                        "failOpen": True,
                        "metadata": {"model_armor_settings": "[]"},
                    }
                ],
            }
        ],
    }
    full = armor.traffic_extension("edge", "default", "us-central1", MA, armor.model_armor_settings(MA, NAMES))
    assert validate_with_upstream(full) == []


def test_guarded_gateways_defaults_and_overrides():
    ext, internal = gateway(), GatewayConfig.model_validate({"name": "int", "class": "gke-l7-rilb"})
    assert guarded_gateways([ext, internal], MA) == ["edge"]
    assert guarded_gateways([ext, internal], None) == []
    only_internal = MA.model_copy(update={"gateways": ["int"]})
    assert guarded_gateways([ext, internal], only_internal) == ["int"]
    forced = GatewayConfig.model_validate({"name": "int", "class": "gke-l7-rilb", "model_armor": True})
    off = GatewayConfig.model_validate({"name": "edge", "model_armor": False})
    assert guarded_gateways([off, forced], MA) == ["int"]


# -- metrics access ------------------------------------------------------------------------------------
def test_metrics_access_names_are_seed_001():
    assert ma.metrics_reader_role()["rules"] == [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]
    secret = ma.metrics_reader_token_secret("default")
    assert secret["type"] == "kubernetes.io/service-account-token"
    assert secret["metadata"]["annotations"] == {"kubernetes.io/service-account.name": "inference-gateway-sa-metrics-reader"}
    binding = ma.secret_read_binding()
    assert binding["metadata"]["name"] == "gmp-system:collector:inference-gateway-sa-metrics-reader-secret-read"
    assert binding["subjects"] == [{"name": "collector", "namespace": "gmp-system", "kind": "ServiceAccount"}]
    assert ma.secret_read_role()["rules"][0]["resourceNames"] == ["inference-gateway-sa-metrics-reader-secret"]


def test_pod_monitoring_uses_the_token():
    pm = ma.pod_monitoring("vllm", "default", {"app": "vllm"}, 8000, "/metrics", "15s")
    assert pm["spec"]["endpoints"][0]["authorization"] == {
        "type": "Bearer",
        "credentials": {"secret": {"name": "inference-gateway-sa-metrics-reader-secret", "key": "token"}},
    }
    assert validate_with_upstream(pm) == []


# -- dashboard and alerts -------------------------------------------------------------------------------
SCOPE = dash.Scope(cluster="igw-gke", namespace="default")


def test_dashboard_has_every_panel_as_promql():
    d = json.loads(dash.dashboard_json("Inference", SCOPE))
    tiles = d["mosaicLayout"]["tiles"]
    queries = " ".join(ds["timeSeriesQuery"]["prometheusQuery"] for t in tiles for ds in t["widget"]["xyChart"]["dataSets"])
    for metric in (
        "vllm:request_success_total",
        "vllm:time_to_first_token_seconds_bucket",
        "vllm:request_time_per_output_token_seconds_bucket",
        "vllm:num_requests_waiting",
        "vllm:kv_cache_usage_perc",
        "picker_decision_duration_seconds_bucket",
        "picker_rejected_requests_total",
        "picker_endpoint_saturation",
        "DCGM_FI_DEV_GPU_UTIL",
        "picker_flow_queue_size",
        "picker_flow_queue_wait_seconds_bucket",
    ):
        assert metric in queries, metric
    assert 'code=~"429|503"' in queries
    assert all(t["xPos"] + t["width"] <= d["mosaicLayout"]["columns"] for t in tiles)
    positions = [(t["xPos"], t["yPos"]) for t in tiles]
    assert len(set(positions)) == len(positions)


def test_alerts_saturation_and_picker():
    specs = {a.name: a for a in dash.alerts(SCOPE, queue_threshold=10, kv_threshold=0.9, saturation_minutes=10, picker_minutes=3)}
    assert set(specs) == {"queue-saturation", "kv-cache-saturation", "picker-unavailable", "picker-no-endpoints"}
    assert specs["queue-saturation"].query.endswith("> 10") and specs["queue-saturation"].duration_seconds == 600
    assert specs["kv-cache-saturation"].query.endswith("> 0.9")
    assert "absent(up{" in specs["picker-unavailable"].query and specs["picker-unavailable"].duration_seconds == 180


# -- endpoints -------------------------------------------------------------------------------------------
STACK = parse_stack_config(
    {
        "project": "igw-test-project",
        "node_pools": [{"machine_type": "a3-highgpu-1g", "provisioning": "spot", "autoscaling": {"total_max_nodes": 1}}],
        "model_servers": [{"name": "vllm", "model": "base", "lora_adapters": [{"id": "a", "source": "x/a"}, {"id": "b", "source": "x/b"}]}],
        "pools": [{"name": "pool", "model_server": "vllm"}],
        "models": [{"name": "a", "pool": "pool", "targets": [{"name": "current", "model": "a", "weight": 90}, {"name": "challenger", "model": "b", "weight": 10}]}],
        "gateways": [
            {"name": "edge", "routes": [{"name": "invoke", "pool": "pool", "invoke_route_prefix": "/*"}]},
            {"name": "int", "class": "gke-l7-rilb", "routes": [{"name": "all", "pool": "pool"}]},
        ],
    }
)


def test_model_endpoints_prefer_external_and_read_ip_when_ephemeral():
    eps = endpoints.model_endpoints(STACK, {"edge": "203.0.113.7", "int": None})
    assert eps["a"]["url"] == "http://203.0.113.7/invoke/v1/chat/completions"
    assert eps["a"]["curl"] == (
        "curl -sS -X POST http://203.0.113.7/invoke/v1/chat/completions -H 'Content-Type: application/json' "
        "-d '{\"model\":\"a\",\"messages\":[{\"role\":\"user\",\"content\":\"Say hello.\"}],\"max_tokens\":64}'"
    )
    served = endpoints.served_model_endpoints(STACK, {"edge": "203.0.113.7", "int": None})
    assert served["edge/challenger"]["curl"].count("x-deployed-model-id: challenger") == 1
    internal = served["int/challenger"]
    assert internal["url"] == "http://${GATEWAY_IP}/served-models/challenger/invocations"
    assert internal["curl"].startswith("GATEWAY_IP=$(kubectl get gateway/int -n igw -o jsonpath='{.status.addresses[0].value}') && curl")
