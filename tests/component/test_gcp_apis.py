"""Apis under the mock engine: which services, what happens on destroy, who waits for them."""

from __future__ import annotations

from tests.conftest import render_with

SERVICE = "gcp:projects/service:Service"
EXPECTED = {
    "container.googleapis.com",
    "compute.googleapis.com",
    "networkservices.googleapis.com",
    "modelarmor.googleapis.com",
    "artifactregistry.googleapis.com",
    "iam.googleapis.com",
    "monitoring.googleapis.com",
    "logging.googleapis.com",
}


def test_every_stack_enables_the_platform_apis_and_keeps_them_on_destroy(created_cluster_stack):
    services = created_cluster_stack.of_type(SERVICE)
    extra = {"secretmanager.googleapis.com"} if created_cluster_stack.stack == "external" else set()  # a Secret Manager key
    assert {s.inputs["service"] for s in services} == EXPECTED | extra, created_cluster_stack.stack
    for s in services:
        assert s.inputs["disableOnDestroy"] is False, s.urn
        assert s.inputs["project"] == created_cluster_stack.one("gcp:container/cluster:Cluster").inputs["project"], s.urn
        assert "inference-gateway:gcp:Apis" in s.parent, s.urn


def test_components_wait_for_their_apis(created_cluster_stack):
    def deps(type_: str, name: str | None = None) -> set[str]:
        r = created_cluster_stack.one(type_, name)
        return {created_cluster_stack.by_urn(d).inputs.get("service") for d in r.dependencies if "projects/service:Service" in d}

    assert {"container.googleapis.com", "compute.googleapis.com", "monitoring.googleapis.com", "logging.googleapis.com"} <= deps(
        "gcp:container/cluster:Cluster"
    )
    assert deps("gcp:compute/network:Network") == {"compute.googleapis.com"}
    for account in created_cluster_stack.of_type("gcp:serviceaccount/account:Account"):
        assert {"iam.googleapis.com"} <= {created_cluster_stack.by_urn(d).inputs.get("service") for d in account.dependencies}, account.urn
    assert deps("pulumi:providers:kubernetes") == {"networkservices.googleapis.com"}
    for repo in created_cluster_stack.of_type("gcp:artifactregistry/repository:Repository"):
        assert {created_cluster_stack.by_urn(d).inputs.get("service") for d in repo.dependencies} == {"artifactregistry.googleapis.com"}, repo.urn
    for t in created_cluster_stack.of_type("gcp:modelarmor/template:Template"):
        assert {created_cluster_stack.by_urn(d).inputs.get("service") for d in t.dependencies} == {"modelarmor.googleapis.com"}, t.urn


def test_apis_managed_elsewhere_create_none():
    synth = render_with("dev", apis={"enable": False, "disable_on_destroy": True})
    assert synth.of_type(SERVICE) == []
    assert synth.one("gcp:container/cluster:Cluster")  # the rest still renders


def test_disable_on_destroy_is_passed_through():
    synth = render_with("local", apis={"disable_on_destroy": True})
    assert {s.inputs["disableOnDestroy"] for s in synth.of_type(SERVICE)} == {True}
