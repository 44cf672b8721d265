"""Pure serving builders: model server, picker, pool, routing objects, CRDs (no Pulumi)."""

from __future__ import annotations

import copy

import pytest
import yaml

from components.builders import crds, inference_pool as ip, model_routing as mr, model_server as ms
from components.catalog.names import dns_name
from components.catalog.runtimes import resolve_preset
from components.config.serving import InferencePoolConfig, ModelServerConfig, ServedModelConfig
from tests.crd_schema import crd_errors, validate_with_upstream

SERVER = ModelServerConfig(
    name="vllm-llama3-8b-instruct",
    model="meta-llama/Llama-3.1-8B-Instruct",
    replicas=3,
    lora_adapters=[
        {"id": "food-review", "source": "Kawon/llama3.1-food-finetune_v14_r8"},
        {"id": "cad-fabricator", "source": "redcathode/fabricator"},
    ],
)
POOL = InferencePoolConfig(name="llama", model_server=SERVER.name)
MODELS = [
    ServedModelConfig(name="food-review", pool="llama", targets=[{"model": "food-review", "weight": 100}],
                      rate_limits=[{"calls": 100, "key": "user"}]),
    ServedModelConfig(name="meta-llama/Llama-3.1-8B-Instruct", pool="llama", criticality="Critical"),
    ServedModelConfig(name="cad-fabricator", pool="llama", criticality="Sheddable",
                      rate_limits=[{"calls": 600, "key": "endpoint"}]),
]


def deployment(server=SERVER, **kw):
    args = dict(namespace="default", preset=resolve_preset(server), accelerator="nvidia-h100-80gb",
                grace_period_seconds=130, hf_secret_name="hf", service_account_name=None)
    args.update(kw)
    return ms.deployment(server, **args)


# -- model server -----------------------------------------------------------------------------------
def test_gpu_count_follows_tensor_parallel_size():
    d = deployment(SERVER.model_copy(update={"tensor_parallel_size": 4}))
    res = d["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert res["requests"]["nvidia.com/gpu"] == res["limits"]["nvidia.com/gpu"] == 4
    assert "--tensor-parallel-size" in d["spec"]["template"]["spec"]["containers"][0]["args"]


def test_no_lora_means_no_syncer_and_no_adapter_volumes():
    server = SERVER.model_copy(update={"lora_adapters": [], "enable_lora": False})
    pod = deployment(server)["spec"]["template"]["spec"]
    assert "initContainers" not in pod
    assert {v["name"] for v in pod["volumes"]} == {"data", "shm", "tmp", "cache", "hf-token"}
    assert "VLLM_ALLOW_RUNTIME_LORA_UPDATING" not in {e["name"] for e in pod["containers"][0]["env"]}


def test_lora_enabled_without_adapters_keeps_the_syncer():
    server = SERVER.model_copy(update={"lora_adapters": []})
    pod = deployment(server)["spec"]["template"]["spec"]
    assert pod["initContainers"][0]["name"] == "lora-adapter-syncer"
    cfg = yaml.safe_load(ms.adapters_configmap(server, "default", resolve_preset(server))["data"]["configmap.yaml"])
    assert cfg["vLLMLoRAConfig"]["ensureExist"] == {"models": []}


def test_no_hf_token_means_no_secret_reference():
    env = deployment(hf_secret_name=None)["spec"]["template"]["spec"]["containers"][0]["env"]
    assert "HUGGING_FACE_HUB_TOKEN" not in {e["name"] for e in env}


def test_gcs_bucket_mounts_read_only_with_workload_identity():
    server = SERVER.model_copy(update={"gcs_bucket": "my-weights"})
    d = deployment(server, service_account_name="vllm-llama3-8b-instruct")
    pod = d["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "vllm-llama3-8b-instruct" and pod["automountServiceAccountToken"] is False
    assert d["spec"]["template"]["metadata"]["annotations"] == {"gke-gcsfuse/volumes": "true"}
    (models,) = [v for v in pod["volumes"] if v["name"] == "models"]
    assert models["csi"]["driver"] == "gcsfuse.csi.storage.gke.io" and models["csi"]["volumeAttributes"]["bucketName"] == "my-weights"
    assert {"name": "models", "mountPath": "/mnt/models", "readOnly": True} in pod["containers"][0]["volumeMounts"]
    sa = ms.service_account("ksa", "default", "gsa@p.iam.gserviceaccount.com")
    assert sa["metadata"]["annotations"] == {"iam.gke.io/gcp-service-account": "gsa@p.iam.gserviceaccount.com"}


def test_startup_probe_follows_config_and_prestop_follows_drain():
    server = SERVER.model_copy(update={"startup_timeout_seconds": 900, "drain": SERVER.drain.model_copy(update={"pre_stop_seconds": 15})})
    c = deployment(server)["spec"]["template"]["spec"]["containers"][0]
    assert c["startupProbe"]["failureThreshold"] == 900
    assert c["lifecycle"]["preStop"] == {"sleep": {"seconds": 15}}


def test_grpc_runtime_exposes_both_ports_and_probes_http():
    server = ModelServerConfig(name="tgis", model="google/flan-t5-xl", runtime="tgis", hf_token=False)
    c = deployment(server, hf_secret_name=None)["spec"]["template"]["spec"]["containers"][0]
    assert c["ports"] == [
        {"containerPort": 3000, "name": "http", "protocol": "TCP"},
        {"containerPort": 8033, "name": "grpc", "protocol": "TCP"},
    ]
    assert c["command"] == ["text-generation-launcher"] and c["livenessProbe"]["httpGet"]["port"] == "http"
    pool = ip.inference_pool(InferencePoolConfig(name="t", model_server="tgis"), "tgis", resolve_preset(server), "default")
    assert pool["spec"]["appProtocol"] == "kubernetes.io/h2c" and pool["spec"]["targetPorts"] == [{"number": 8033}]


def test_adapters_configmap_is_the_syncer_format():
    cm = ms.adapters_configmap(SERVER, "default", resolve_preset(SERVER))
    assert cm["metadata"]["name"] == "vllm-llama3-8b-instruct-adapters"
    assert yaml.safe_load(cm["data"]["configmap.yaml"]) == {
        "vLLMLoRAConfig": {
            "name": "vllm-llama3-8b-instruct",
            "port": 8000,
            "defaultBaseModel": "meta-llama/Llama-3.1-8B-Instruct",
            "ensureExist": {"models": [
                {"id": "food-review", "source": "Kawon/llama3.1-food-finetune_v14_r8"},
                {"id": "cad-fabricator", "source": "redcathode/fabricator"},
            ]},
        }
    }


# -- picker -----------------------------------------------------------------------------------------
def test_picker_config_default_shape():
    cfg = ip.picker_config(POOL, SERVER, resolve_preset(SERVER), MODELS)
    assert cfg["scheduling"] == {
        "filters": [],
        # The benchmarked defaults (benchmarks/results/README.md), LoRA affinity for the adapters.
        "scorers": [
            {"type": "queue-scorer", "weight": 2},
            {"type": "kv-cache-utilization-scorer", "weight": 1},
            {"type": "prefix-cache-scorer", "weight": 5},
            {"type": "lora-affinity-scorer", "weight": 1},
            {"type": "inflight-load-scorer", "weight": 2},
        ],
        "picker": {"type": "max-score-picker"},
    }
    assert cfg["models"] == {
        "served": ["cad-fabricator", "food-review", "meta-llama/Llama-3.1-8B-Instruct"],
        "reject_unknown": False,
        # seed 000's x-deployed-model-id values of this pool and the model each serves
        "deployed": {"food-review": "food-review", "meta-llama-llama-3-1-8b-instruct": "meta-llama/Llama-3.1-8B-Instruct",
                     "cad-fabricator": "cad-fabricator"},
    }
    assert cfg["rate_limits"] == [
        {"key": "user", "calls": 100, "renewal_period": "minute", "model": "food-review"},
        {"key": "endpoint", "calls": 600, "renewal_period": "minute", "model": "cad-fabricator"},
    ]
    # identity: the API key's user, else the client address GKE's load balancer appended
    # (`<client-ip>,<lb-ip>`: second from the right); never a client-chosen header
    assert cfg["auth"] == {"client_address_header": "x-forwarded-for", "client_address_hop": 2}


def test_picker_config_without_adapters_has_no_lora_scorer():
    server = SERVER.model_copy(update={"lora_adapters": []})
    types = [s["type"] for s in ip.picker_config(POOL, server, resolve_preset(server), [])["scheduling"]["scorers"]]
    assert types == ["queue-scorer", "kv-cache-utilization-scorer", "prefix-cache-scorer", "inflight-load-scorer"]


def test_picker_config_for_runtimes_without_metrics():
    server = ModelServerConfig(name="t", model="m", runtime="triton")
    cfg = ip.picker_config(POOL, server, resolve_preset(server), [])
    assert cfg["scheduling"]["scorers"] == [{"type": "inflight-load-scorer", "weight": 2}]
    assert cfg["scrape"]["engine"] == "none"


def test_picker_config_user_scorers_and_picker():
    pool = InferencePoolConfig(name="llama", model_server=SERVER.name, picker={
        "scorers": [{"type": "queue-scorer", "weight": 1}, {"type": "prefix-cache-scorer", "weight": 5, "parameters": {"block_size": 64}}],
        "picker": "weighted-random-picker", "reject_unknown_models": True,
    })
    cfg = ip.picker_config(pool, SERVER, resolve_preset(SERVER), MODELS)
    assert cfg["scheduling"]["scorers"][1] == {"type": "prefix-cache-scorer", "weight": 5, "parameters": {"block_size": 64}}
    assert cfg["scheduling"]["picker"] == {"type": "weighted-random-picker"} and cfg["models"]["reject_unknown"] is True


@pytest.mark.parametrize("runtime", ["vllm", "triton", "tgis"])
def test_picker_config_loads_with_the_picker(runtime):
    config_mod = pytest.importorskip("endpoint_picker.config")
    server = SERVER if runtime == "vllm" else ModelServerConfig(name="s", model="m", runtime=runtime)
    cfg = ip.picker_config(POOL, server, resolve_preset(server), MODELS)
    data = yaml.safe_load(ip.picker_configmap(POOL, cfg, "default")["data"]["picker.yaml"])
    loaded = config_mod.load_config(data)
    assert [s.type for s in loaded.scheduling.scorers] == [s["type"] for s in cfg["scheduling"]["scorers"]]
    assert len(loaded.rate_limits) == 2


def test_picker_args_single_replica():
    assert ip.picker_args(POOL, "ns") == [
        "--pool-name", "llama", "--pool-namespace", "ns", "--config-file", "/config/picker.yaml",
        "--discovery", "kubernetes", "--grpc-port", "9002", "--grpc-health-port", "9003", "--metrics-port", "9090",
    ]


def test_picker_ha_and_api_keys():
    pool = InferencePoolConfig(name="llama", model_server=SERVER.name, picker={"replicas": 2, "api_keys": True})
    args = ip.picker_args(pool, "ns")
    assert args[-7:] == ["--ha-enable-leader-election", "--ha-lease-duration", "10", "--ha-retry-period", "1",
                         "--api-keys-file", "/etc/picker/api-keys/keys.yaml"]
    rules = ip.picker_role(pool, "ns")["rules"]
    assert {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]} in rules
    assert {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]} in rules
    dep = ip.picker_deployment(pool, "ns", "img", {})
    # Only the leader is ever Ready: Recreate (a rolling update would wait forever for a standby)
    # and Pulumi waits for one ready replica, not two.
    assert dep["spec"]["strategy"] == {"type": "Recreate"}
    assert dep["metadata"]["annotations"] == {"pulumi.com/waitFor": "jsonpath={.status.readyReplicas}=1"}
    vols = dep["spec"]["template"]["spec"]["volumes"]
    assert {"name": "api-keys", "secret": {"secretName": "llama-epp-api-keys"}} in vols


def test_picker_serves_a_tls_secret_when_named_else_its_self_signed_default():
    assert "--cert-path" not in ip.picker_args(POOL, "ns")  # default: TLS, self-signed at startup
    pool = InferencePoolConfig(name="llama", model_server=SERVER.name, picker={"tls_secret": "llama-epp-cert"})
    assert ip.picker_args(pool, "ns")[-2:] == ["--cert-path", "/etc/picker/tls"]
    spec = ip.picker_deployment(pool, "ns", "img", {})["spec"]["template"]["spec"]
    assert {"name": "tls", "secret": {"secretName": "llama-epp-cert"}} in spec["volumes"]
    assert {"name": "tls", "mountPath": "/etc/picker/tls", "readOnly": True} in spec["containers"][0]["volumeMounts"]


def test_picker_role_is_read_only_with_one_replica():
    rules = ip.picker_role(POOL, "ns")["rules"]
    assert rules == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["inference.networking.k8s.io"], "resources": ["inferencepools"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["llm-d.ai"], "resources": ["inferenceobjectives", "inferencemodelrewrites"], "verbs": ["get", "list", "watch"]},
    ]
    dep = ip.picker_deployment(POOL, "ns", "img", {})
    assert dep["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    assert "annotations" not in dep["metadata"]


def test_picker_config_change_rolls_the_picker():
    a = ip.picker_deployment(POOL, "ns", "img", {"x": 1})["spec"]["template"]["metadata"]["annotations"]
    b = ip.picker_deployment(POOL, "ns", "img", {"x": 2})["spec"]["template"]["metadata"]["annotations"]
    assert a != b


# -- routing objects --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("model", "name"),
    [
        ("food-review", "food-review"),
        ("meta-llama/Llama-3.1-8B-Instruct", "meta-llama-llama-3.1-8b-instruct"),
        ("Qwen/Qwen2.5--7B__Instruct", "qwen-qwen2.5-7b-instruct"),
        ("/weird/.name-", "weird.name"),
        ("org/" + "x" * 100, None),
    ],
)
def test_dns_names(model, name):
    import re

    got = dns_name(model)
    assert len(got) <= 63 and re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", got)
    assert ".-" not in got and "-." not in got
    if name is not None:
        assert got == name


@pytest.mark.parametrize(("criticality", "priority"), [("Critical", 100), ("Standard", 0), ("Sheddable", -10)])
def test_criticality_to_priority(criticality, priority):
    obj = mr.inference_objective(ServedModelConfig(name="m", pool="p", criticality=criticality), "ns")
    assert obj["spec"] == {"priority": priority, "poolRef": {"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": "p"}}
    assert obj["metadata"]["annotations"] == {"inference-gateway.dev/model": "m"}


def test_rewrite_omits_zero_weights_and_needs_targets():
    assert mr.inference_model_rewrite(ServedModelConfig(name="m", pool="p"), "ns") is None
    m = ServedModelConfig(name="food-review", pool="p", targets=[
        {"name": "current", "model": "food-review", "weight": 100}, {"name": "challenger", "model": "food-review-v2", "weight": 0},
    ])
    rw = mr.inference_model_rewrite(m, "ns")
    assert rw["spec"]["rules"] == [{"matches": [{"model": {"type": "Exact", "value": "food-review"}}],
                                    "targets": [{"modelRewrite": "food-review", "weight": 100}]}]


# -- CRDs -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("version", "installs_pool"),
    [("1.32.3", True), ("1.33.2-gke.1335000", True), ("1.34.0-gke.1625999", True),
     ("1.34.0-gke.1626000", False), ("1.34.1", False), ("1.35", False), ("latest", False)],
)
def test_inference_pool_crd_only_before_gke_installs_it(version, installs_pool):
    kinds = [c["spec"]["names"]["kind"] for c in crds.crds_to_install(version)]
    assert ("InferencePool" in kinds) is installs_pool
    assert {"InferenceObjective", "InferenceModelRewrite"} <= set(kinds)


OUR_CRDS = {c["spec"]["names"]["kind"]: c for c in crds.crds_to_install("1.30.0")}

# Objects the upstream CRDs accept: ours, minimal ones relying on defaults, and edge values.
ACCEPTED = [
    ip.inference_pool(POOL, SERVER.name, resolve_preset(SERVER), "default"),
    {"apiVersion": "inference.networking.k8s.io/v1", "kind": "InferencePool", "metadata": {"name": "p"},
     "spec": {"selector": {"matchLabels": {"app": "x"}}, "targetPorts": [{"number": 8000}, {"number": 8001}],
              "endpointPickerRef": {"name": "p-epp", "port": {"number": 9002}}}},
    {"apiVersion": "inference.networking.k8s.io/v1", "kind": "InferencePool", "metadata": {"name": "p"},
     "spec": {"selector": {"matchLabels": {"app": "x"}}, "targetPorts": [{"number": 1}],
              "endpointPickerRef": {"kind": "Other", "group": "example.com", "name": "e", "failureMode": "FailClose"}}},
    *[mr.inference_objective(m, "default") for m in MODELS],
    {"apiVersion": "llm-d.ai/v1alpha2", "kind": "InferenceObjective", "metadata": {"name": "o"}, "spec": {"poolRef": {"name": "p"}}},
    mr.inference_model_rewrite(MODELS[0], "default"),
    {"apiVersion": "llm-d.ai/v1alpha2", "kind": "InferenceModelRewrite", "metadata": {"name": "r"},
     "spec": {"poolRef": {"name": "p"}, "rules": [{"targets": [{"modelRewrite": "a"}]}]}},
]
REJECTED = [
    {"apiVersion": "inference.networking.k8s.io/v1", "kind": "InferencePool", "metadata": {"name": "p"},
     "spec": {"selector": {"matchLabels": {"app": "x"}}, "targetPorts": [{"number": 8000}, {"number": 8000}]}},
    {"apiVersion": "inference.networking.k8s.io/v1", "kind": "InferencePool", "metadata": {"name": "p"},
     "spec": {"selector": {"matchLabels": {"app": "x"}}, "targetPorts": [{"number": 8000}], "endpointPickerRef": {"name": "e"}}},
    {"apiVersion": "inference.networking.k8s.io/v1", "kind": "InferencePool", "metadata": {"name": "p"},
     "spec": {"selector": {"matchLabels": {}}, "targetPorts": [{"number": 8000}]}},
    {"apiVersion": "llm-d.ai/v1alpha2", "kind": "InferenceModelRewrite", "metadata": {"name": "r"},
     "spec": {"poolRef": {"name": "p"}, "rules": [{"targets": [{"modelRewrite": "a", "weight": 0}]}]}},
    {"apiVersion": "llm-d.ai/v1alpha2", "kind": "InferenceObjective", "metadata": {"name": "o"}, "spec": {"priority": 1}},
]


@pytest.mark.parametrize("obj", ACCEPTED, ids=lambda o: f"{o['kind']}-{o['metadata']['name']}")
def test_our_crds_accept_what_upstream_accepts(obj):
    assert validate_with_upstream(obj) == []
    assert crd_errors(obj, OUR_CRDS[obj["kind"]]) == []


@pytest.mark.parametrize("obj", REJECTED, ids=lambda o: f"{o['kind']}-{o['metadata']['name']}")
def test_our_crds_reject_what_upstream_rejects(obj):
    assert validate_with_upstream(obj) != []
    assert crd_errors(obj, OUR_CRDS[obj["kind"]]) != []


def test_crd_schemas_match_upstream_spec_fields():
    """Same spec schema as upstream, descriptions aside (the published field definitions)."""
    from tests.crd_schema import upstream_crd, version_schema

    def strip(x):
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if k != "description"}
        if isinstance(x, list):
            return [strip(v) for v in x]
        return x

    for kind, crd in OUR_CRDS.items():
        version = crd["spec"]["versions"][0]["name"]
        group = crd["spec"]["group"]
        theirs = version_schema(upstream_crd(f"{group}/{version}", kind), version)
        ours = version_schema(crd, version)
        assert strip(ours["properties"]["spec"]) == strip(theirs["properties"]["spec"]), kind
        assert crd["spec"]["names"] == upstream_crd(f"{group}/{version}", kind)["spec"]["names"]


def test_picker_probes_catch_a_hung_picker_and_the_pool_carries_the_message_timeout():
    """Both probes are answered by the picker's deciding event loop: readiness takes a hung picker
    out of the Service after two misses, liveness restarts it after three, killing it after 5 s
    (a hung process has nothing to drain) instead of the pod's 130 s."""
    c = ip.picker_deployment(POOL, "ns", "img", {})["spec"]["template"]["spec"]["containers"][0]
    assert c["readinessProbe"] == {"grpc": {"port": 9003, "service": "readiness"}, "periodSeconds": 2,
                                   "timeoutSeconds": 1, "failureThreshold": 2}
    assert c["livenessProbe"] == {"grpc": {"port": 9003, "service": "liveness"}, "initialDelaySeconds": 5,
                                  "periodSeconds": 5, "timeoutSeconds": 2, "failureThreshold": 3,
                                  "terminationGracePeriodSeconds": 5}
    pool = ip.inference_pool(POOL, SERVER.name, resolve_preset(SERVER), "default")
    assert pool["metadata"]["annotations"] == {"inference-gateway.dev/picker-message-timeout": "1000ms"}
    fast = InferencePoolConfig(name="llama", model_server=SERVER.name, picker={"message_timeout_ms": 250})
    assert ip.inference_pool(fast, SERVER.name, resolve_preset(SERVER), "default")["metadata"]["annotations"] == {
        "inference-gateway.dev/picker-message-timeout": "250ms"}


def test_picker_config_bounds_overload_by_default_and_can_turn_it_off():
    cfg = ip.picker_config(POOL, SERVER, resolve_preset(SERVER), MODELS)
    assert cfg["saturation"] == {"overload_threshold": 4.0, "critical_overload_threshold": 8.0}
    off = InferencePoolConfig(name="llama", model_server=SERVER.name,
                              picker={"overload_threshold": None, "critical_overload_threshold": None})
    assert "saturation" not in ip.picker_config(off, SERVER, resolve_preset(SERVER), MODELS)
