"""Autoscaling under the mock engine: the ScaledObject waits for its Deployment, KEDA gets read
access to Managed Prometheus as its own Workload Identity principal, the objects pass KEDA's own
CRD schemas (with their CEL rules), and KEDA itself is installed only when asked."""

from __future__ import annotations

import copy

import yaml

from tests.conftest import k8s_objects, render_with, rendered
from tests.crd_schema import validate_with_upstream

SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
TRIGGER_AUTH = "kubernetes:keda.sh/v1alpha1:TriggerAuthentication"
RELEASE = "kubernetes:helm.sh/v3:Release"


def test_scaled_object_waits_for_its_deployment_and_keda_access():
    s = rendered("scale-to-zero")
    so = s.one(SCALED_OBJECT)
    deployment = s.one("kubernetes:apps/v1:Deployment", "vllm-llama3-8b-instruct")
    iam = s.one("gcp:projects/iAMMember:IAMMember", "igw-s2z-serving-autoscaling-keda-monitoring-viewer")
    auth = s.one(TRIGGER_AUTH)
    assert {deployment.urn, iam.urn, auth.urn} <= set(so.dependencies)
    assert iam.inputs["role"] == "roles/monitoring.viewer"
    assert iam.inputs["member"] == ("principal://iam.googleapis.com/projects/123456789012/locations/global/"
                                    "workloadIdentityPools/igw-local-dev.svc.id.goog/subject/ns/keda/sa/keda-operator")
    assert "replicas" not in deployment.inputs["spec"]
    assert s.of_type(RELEASE) == []  # a cluster add-on: installed only with keda.install


def test_keda_objects_pass_kedas_own_schemas():
    for kind in ("ScaledObject", "TriggerAuthentication"):
        (obj,) = k8s_objects(rendered("scale-to-zero"), kind)
        assert validate_with_upstream(obj) == [], kind


def test_keda_schema_refuses_what_keda_would():
    (obj,) = k8s_objects(rendered("scale-to-zero"), "ScaledObject")
    bad = copy.deepcopy(obj)
    bad["spec"]["minReplicaCount"] = 5
    assert validate_with_upstream(bad) == ["spec: minReplicaCount must be less than or equal to maxReplicaCount"]


def test_keda_install_on_request():
    s = render_with("scale-to-zero", keda={"install": True, "version": "2.20.2"})
    release = s.one(RELEASE)
    assert {k: release.inputs[k] for k in ("chart", "version", "namespace", "createNamespace")} == {
        "chart": "keda", "version": "2.20.2", "namespace": "keda", "createNamespace": True}
    assert release.inputs["repositoryOpts"] == {"repo": "https://kedacore.github.io/charts"}
    assert release.urn in s.one(SCALED_OBJECT).dependencies


def test_the_pool_that_scales_to_zero_holds_requests():
    (cm,) = [c for c in k8s_objects(rendered("scale-to-zero"), "ConfigMap") if c["metadata"]["name"].endswith("-epp")]
    assert yaml.safe_load(cm["data"]["picker.yaml"])["flow_control"] == {
        "max_requests_per_priority": 1000, "ttl_s": 30.0, "no_endpoint_ttl_s": 60.0}


def test_fixed_replica_stacks_render_no_autoscaling():
    for stack in ("dev", "local"):
        assert rendered(stack).of_type(SCALED_OBJECT) == []
