"""Serving components under the mock engine: behaviour across renders, secrets, ordering, identity."""

from __future__ import annotations

import copy
import json

import pytest

from igw.engine import SECRET, run_program
from igw.stackfile import read_stack
from tests.conftest import k8s_object, k8s_objects, render_with, rendered

DEV_SERVER = "vllm-llama3-8b-instruct"


def dev_servers() -> list[dict]:
    return copy.deepcopy(read_stack("dev")["inference-gateway:model_servers"])


def serving_resources(synthesis, type_prefix: str = ""):
    return [r for r in synthesis.resources if "inference-gateway:serving:" in r.urn and r.type.startswith(type_prefix)]


# -- LoRA adapters change only the ConfigMap ----------------------------------------------------------
def test_adding_an_adapter_changes_only_the_adapters_configmap():
    servers = dev_servers()
    servers[0]["lora_adapters"].append({"id": "food-review-v2", "source": "Kawon/llama3.1-food-finetune_v15_r8"})
    before, after = rendered("dev"), render_with("dev", model_servers=servers)
    assert k8s_object(after, "Deployment", DEV_SERVER) == k8s_object(before, "Deployment", DEV_SERVER)
    cm_before = k8s_object(before, "ConfigMap", f"{DEV_SERVER}-adapters")
    cm_after = k8s_object(after, "ConfigMap", f"{DEV_SERVER}-adapters")
    assert cm_before != cm_after and "food-review-v2" in cm_after["data"]["configmap.yaml"]


def test_removing_all_adapters_keeps_the_pod_template():
    servers = dev_servers()
    servers[0]["lora_adapters"] = []
    models = [m for m in read_stack("dev")["inference-gateway:models"] if m["name"].startswith("meta-llama")]
    after = render_with("dev", model_servers=servers, models=models)
    assert k8s_object(after, "Deployment", DEV_SERVER) == k8s_object(rendered("dev"), "Deployment", DEV_SERVER)


# -- secrets --------------------------------------------------------------------------------------------
def _plaintext_run(**secrets: str):
    config = dict(read_stack("prod"))
    for key, value in secrets.items():
        config[f"inference-gateway:{key}"] = value  # plain value: the program must still treat it as secret
    return run_program("prod-plaintext", config)


def test_hf_token_and_api_keys_never_reach_state_in_plaintext():
    synthesis = _plaintext_run(hfToken="hf_PLAINTEXT_TOKEN_123", apiKeys="deadbeef: PLAINTEXT_USER")
    dump = json.dumps([r.inputs for r in synthesis.resources])
    assert "hf_PLAINTEXT_TOKEN_123" not in dump and "PLAINTEXT_USER" not in dump
    hf = k8s_object(synthesis, "Secret", "igw-prod-hf-token")
    keys = k8s_object(synthesis, "Secret", "llama3-8b-epp-api-keys")
    # Each value masked, the keys kept: the rendered Secrets stay appliable.
    assert hf["stringData"] == {"token": SECRET} and keys["stringData"] == {"keys.yaml": SECRET}


def test_hf_token_secret_is_mounted_as_the_file_hf_token_path_names(dev):
    secret = k8s_object(dev, "Secret", "igw-dev-hf-token")
    pod = k8s_object(dev, "Deployment", DEV_SERVER)["spec"]["template"]["spec"]
    vllm = pod["containers"][0]
    env = {e["name"]: e for e in vllm["env"]}
    assert env["HF_TOKEN_PATH"] == {"name": "HF_TOKEN_PATH", "value": "/var/run/secrets/huggingface/token"}
    assert not [e for e in vllm["env"] if "valueFrom" in e], "no secret reaches an environment variable"
    volume = next(v for v in pod["volumes"] if v["name"] == "hf-token")
    assert volume["secret"] == {"secretName": secret["metadata"]["name"], "defaultMode": 0o440, "items": [{"key": "token", "path": "token"}]}
    mount = next(m for m in vllm["volumeMounts"] if m["name"] == "hf-token")
    assert mount == {"name": "hf-token", "mountPath": "/var/run/secrets/huggingface", "readOnly": True}
    assert pod["securityContext"]["fsGroup"] == 10001  # group-readable 0440 file for the server's group


def test_no_hf_secret_when_no_server_needs_it(local):
    assert not [o for o in k8s_objects(local, "Secret") if o["metadata"]["name"].endswith("hf-token")]
    env = k8s_object(local, "Deployment", DEV_SERVER)["spec"]["template"]["spec"]["containers"][0]["env"]
    assert "HF_TOKEN_PATH" not in {e["name"] for e in env}
    assert "hf-token" not in {v["name"] for v in k8s_object(local, "Deployment", DEV_SERVER)["spec"]["template"]["spec"]["volumes"]}


def test_missing_hf_token_secret_is_a_clear_error():
    config = {k: v for k, v in read_stack("dev").items() if k != "inference-gateway:hfToken"}
    with pytest.raises(Exception, match=r"model_servers\[0\]\.hf_token: true needs the secret config value hfToken"):
        run_program("dev-no-token", config)


def test_missing_api_keys_secret_is_a_clear_error():
    config = {k: v for k, v in read_stack("prod").items() if k != "inference-gateway:apiKeys"}
    with pytest.raises(Exception, match="pools: 'llama3-8b' sets picker.api_keys but the secret config value apiKeys is not set"):
        run_program("prod-no-keys", config)


# -- ordering: CRDs before custom resources -------------------------------------------------------
def test_custom_resources_depend_on_their_crds(dev):
    crds = {r.inputs["metadata"]["name"]: r.urn for r in dev.of_type("kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition")}
    assert set(crds) == {
        "inferencepools.inference.networking.k8s.io", "inferenceobjectives.llm-d.ai", "inferencemodelrewrites.llm-d.ai",
    }
    pool = dev.one("kubernetes:inference.networking.k8s.io/v1:InferencePool")
    assert crds["inferencepools.inference.networking.k8s.io"] in pool.dependencies
    for t in ("InferenceObjective", "InferenceModelRewrite"):
        for r in dev.of_type(f"kubernetes:llm-d.ai/v1alpha2:{t}"):
            assert {crds["inferenceobjectives.llm-d.ai"], crds["inferencemodelrewrites.llm-d.ai"]} <= set(r.dependencies), r.urn
            assert pool.urn in r.dependencies, r.urn


def test_gke_1_34_clusters_get_no_inference_pool_crd():
    synthesis = render_with("dev", cluster={"min_master_version": "1.34.1-gke.1829001"})
    names = {o["metadata"]["name"] for o in k8s_objects(synthesis, "CustomResourceDefinition")}
    assert names == {"inferenceobjectives.llm-d.ai", "inferencemodelrewrites.llm-d.ai"}


# -- identity ---------------------------------------------------------------------------------------
def test_no_gcp_identity_without_a_bucket(dev):
    assert not serving_resources(dev, "gcp:")
    assert not [o for o in k8s_objects(dev, "ServiceAccount") if o["metadata"]["name"] == DEV_SERVER]


def test_gcs_bucket_creates_workload_identity():
    servers = dev_servers()
    servers[0]["gcs_bucket"] = "igw-dev-weights"
    synthesis = render_with("dev", model_servers=servers)
    gsa = synthesis.one("gcp:serviceaccount/account:Account", f"{DEV_SERVER}-gsa")
    assert gsa.inputs["accountId"] == "ms-vllm-llama3-8b-instruct" and len(gsa.inputs["accountId"]) <= 30
    reader = synthesis.one("gcp:storage/bucketIAMMember:BucketIAMMember")
    assert reader.inputs["bucket"] == "igw-dev-weights" and reader.inputs["role"] == "roles/storage.objectViewer"
    wi = synthesis.one("gcp:serviceaccount/iAMMember:IAMMember", f"{DEV_SERVER}-workload-identity")
    assert wi.inputs["role"] == "roles/iam.workloadIdentityUser"
    assert wi.inputs["member"] == f"serviceAccount:igw-dev-project.svc.id.goog[igw-dev/{DEV_SERVER}]"
    ksa = k8s_object(synthesis, "ServiceAccount", DEV_SERVER)
    assert ksa["metadata"]["annotations"]["iam.gke.io/gcp-service-account"] == gsa.inputs["accountId"] + "@igw-dev-project.iam.gserviceaccount.com"
    assert ksa["automountServiceAccountToken"] is False
    pod = k8s_object(synthesis, "Deployment", DEV_SERVER)["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == DEV_SERVER and pod["automountServiceAccountToken"] is False


# -- prod: traffic split, HA picker, API keys, accelerators ------------------------------------------
def test_prod_traffic_split_is_seed_002(prod):
    rw = k8s_object(prod, "InferenceModelRewrite", "food-review")
    assert rw["spec"]["rules"] == [{
        "matches": [{"model": {"type": "Exact", "value": "food-review"}}],
        "targets": [{"modelRewrite": "food-review", "weight": 90}, {"modelRewrite": "food-review-v2", "weight": 10}],
    }]
    assert rw["spec"]["poolRef"]["name"] == "llama3-8b"


def test_prod_priorities(prod):
    prios = {o["metadata"]["annotations"]["inference-gateway.dev/model"]: o["spec"]["priority"] for o in k8s_objects(prod, "InferenceObjective")}
    assert prios == {
        "meta-llama/Llama-3.1-8B-Instruct": 100, "food-review": 0, "cad-fabricator": -10, "meta-llama/Llama-3.1-70B-Instruct": 100,
    }


def test_prod_ha_picker_with_api_keys(prod):
    dep = k8s_object(prod, "Deployment", "llama3-8b-epp")
    args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    assert dep["spec"]["replicas"] == 2 and "--ha-enable-leader-election" in args
    assert args[-2:] == ["--api-keys-file", "/etc/picker/api-keys/keys.yaml"]
    # No budget for pickers: with leader election only the leader is Ready, and a budget would
    # forbid evicting it (node drains would hang).
    assert not [o for o in k8s_objects(prod, "PodDisruptionBudget") if o["metadata"]["name"].endswith("-epp")]
    pool70 = k8s_object(prod, "InferencePool", "llama3-70b")
    assert pool70["spec"]["endpointPickerRef"]["failureMode"] == "FailClose"


def test_prod_70b_uses_two_gpus_on_its_pool(prod):
    pod = k8s_object(prod, "Deployment", "vllm-llama3-70b-instruct")["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 2 and c["args"][-2:] == ["--max-model-len", "32768"]
    assert pod["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"}


def test_picker_deployment_is_hardened(dev):
    pod = k8s_object(dev, "Deployment", f"{DEV_SERVER}-epp")["spec"]["template"]["spec"]
    sc = pod["containers"][0]["securityContext"]
    assert sc == {
        "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True, "runAsUser": 65532,
        "runAsGroup": 65532, "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert pod["nodeSelector"] == {"inference-gateway.dev/pool": "system"} and pod["terminationGracePeriodSeconds"] == 130
    probes = pod["containers"][0]
    assert probes["livenessProbe"]["grpc"] == {"port": 9003, "service": "liveness"}
    assert probes["readinessProbe"]["grpc"] == {"port": 9003, "service": "readiness"}
    svc = k8s_object(dev, "Service", f"{DEV_SERVER}-epp")["spec"]
    assert [(p["name"], p["port"]) for p in svc["ports"]] == [("grpc-ext-proc", 9002), ("http-metrics", 9090)]
    assert svc["type"] == "ClusterIP"


def test_picker_image_comes_from_the_platform(dev):
    image = k8s_object(dev, "Deployment", f"{DEV_SERVER}-epp")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == dev.outputs.get("pickerImage", image) and image


def test_picker_configmap_loads_with_the_picker(any_stack):
    config_mod = pytest.importorskip("endpoint_picker.config")
    import yaml

    for cm in k8s_objects(any_stack, "ConfigMap"):
        if cm["metadata"]["name"].endswith("-epp"):
            config_mod.load_config(yaml.safe_load(cm["data"]["picker.yaml"]))


def test_exports_name_pools_and_picker_services(prod):
    assert prod.outputs["inferencePools"] == ["llama3-8b", "llama3-70b"]
    assert prod.outputs["pickerServices"] == {"llama3-8b": "llama3-8b-epp", "llama3-70b": "llama3-70b-epp"}


def test_component_type_tokens(dev):
    types = {r.type for r in dev.resources if r.type.startswith("inference-gateway:serving:")}
    assert types == {
        "inference-gateway:serving:Serving", "inference-gateway:serving:ModelServer",
        "inference-gateway:serving:InferencePool", "inference-gateway:serving:ModelRouting",
        "inference-gateway:serving:NetworkPolicies",
    }
