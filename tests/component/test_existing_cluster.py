"""Bring your own cluster under the mock engine: what the byo stack creates and what it leaves to
the cluster, how the kubeconfig reaches the provider, and a non-GKE variant."""

from __future__ import annotations

import copy

import pulumi
import pytest

from igw.engine import SECRET, run_program
from igw.stackfile import read_stack
from tests.conftest import k8s_object, k8s_objects, rendered

PROVIDER = "pulumi:providers:kubernetes"
INFRA_TYPES = {
    "gcp:projects/service:Service", "gcp:compute/network:Network", "gcp:compute/subnetwork:Subnetwork",
    "gcp:container/cluster:Cluster", "gcp:container/nodePool:NodePool", "gcp:serviceaccount/account:Account",
}
GKE_ONLY_KINDS = {"Gateway", "HTTPRoute", "HealthCheckPolicy", "GCPBackendPolicy", "GCPTrafficExtension", "PodMonitoring"}


def byo_config(**overrides) -> dict:
    config = copy.deepcopy(read_stack("byo"))
    for key, value in overrides.items():
        config[f"inference-gateway:{key}"] = value
    return config


def non_gke_config() -> dict:
    config = byo_config(
        cluster={"existing": {"gke": False, "kubeconfig": "/etc/igw/kubeconfig"}},
        observability={"pod_monitoring": False, "dashboard": False, "alerts": False},
    )
    del config["inference-gateway:kubeconfig"], config["inference-gateway:node_pools"], config["inference-gateway:gateways"]
    for server in config["inference-gateway:model_servers"]:
        server.pop("node_pool")
    return config


def test_byo_creates_no_gcp_infrastructure_and_reaches_the_cluster_with_the_secret_kubeconfig():
    byo = rendered("byo")
    assert not [r.urn for r in byo.resources if r.type in INFRA_TYPES or r.type.startswith("inference-gateway:gcp:") and "PickerImage" not in r.type]
    provider = byo.one(PROVIDER)
    assert provider.name == "igw-byo-existing-cluster"
    assert provider.inputs["kubeconfig"] == SECRET
    assert "context" not in provider.inputs
    # Every Kubernetes object goes through that provider, after nothing from GCP.
    assert provider.dependencies == []
    assert byo.outputs["clusterName"] == "ml-team-gke"
    assert "clusterEndpoint" not in byo.outputs


def test_byo_installs_the_crds_a_1_33_cluster_lacks_and_keeps_the_gke_layer():
    byo = rendered("byo")
    crds = sorted(o["metadata"]["name"] for o in k8s_objects(byo, "CustomResourceDefinition"))
    assert crds == ["inferencemodelrewrites.llm-d.ai", "inferenceobjectives.llm-d.ai", "inferencepools.inference.networking.k8s.io"]
    assert {o["kind"] for o in byo.kubernetes_objects()} >= GKE_ONLY_KINDS - {"GCPTrafficExtension"}
    deployment = k8s_object(byo, "Deployment", "vllm-llama3-8b-instruct")
    assert deployment["spec"]["template"]["spec"]["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"}


def test_a_kubeconfig_path_is_passed_as_is_and_a_context_is_honoured():
    config = byo_config(cluster={"name": "ml-team-gke", "existing": {"kubeconfig": "~/.kube/config", "context": "gke_p_r_c"}})
    del config["inference-gateway:kubeconfig"]
    provider = run_program("byo-path", config).one(PROVIDER)
    assert provider.inputs["kubeconfig"] == "~/.kube/config"
    assert provider.inputs["context"] == "gke_p_r_c"


def test_no_kubeconfig_at_all_fails_before_any_kubernetes_object():
    config = byo_config()
    del config["inference-gateway:kubeconfig"]
    with pytest.raises(pulumi.RunError, match=r"^cluster.existing.kubeconfig: give the path of the cluster's kubeconfig, or its contents as the secret config value kubeconfig"):
        run_program("byo-nokube", config)


def test_a_path_and_a_secret_kubeconfig_together_are_ambiguous():
    config = byo_config(cluster={"name": "ml-team-gke", "existing": {"kubeconfig": "~/.kube/config"}})
    with pytest.raises(pulumi.RunError, match=r"^cluster.existing.kubeconfig: '~/.kube/config' and the secret config value kubeconfig are both set; keep one"):
        run_program("byo-both", config)


def test_off_gke_only_kubernetes_objects_that_need_no_gke_controller():
    synthesis = run_program("byo-other", non_gke_config())
    assert not [r.urn for r in synthesis.resources if r.type.startswith("gcp:")]
    kinds = {o["kind"] for o in synthesis.kubernetes_objects()}
    assert not kinds & GKE_ONLY_KINDS, kinds & GKE_ONLY_KINDS
    assert {"InferencePool", "InferenceObjective", "InferenceModelRewrite", "Deployment", "Service"} <= kinds
    assert len(k8s_objects(synthesis, "CustomResourceDefinition")) == 3
    pod = k8s_object(synthesis, "Deployment", "vllm-llama3-8b-instruct")["spec"]["template"]["spec"]
    assert "nodeSelector" not in pod
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert synthesis.one(PROVIDER).inputs["kubeconfig"] == "/etc/igw/kubeconfig"


def test_installed_crds_are_left_alone():
    config = non_gke_config()
    config["inference-gateway:cluster"]["existing"]["installed_crds"] = ["InferencePool"]
    synthesis = run_program("byo-installed", config)
    assert sorted(o["metadata"]["name"] for o in k8s_objects(synthesis, "CustomResourceDefinition")) == [
        "inferencemodelrewrites.llm-d.ai", "inferenceobjectives.llm-d.ai"]
