"""`igw status` reading a real API server (igw/kube/status_source.py): the external stack's render
applied to a namespace, its pods made Ready through the API as a kubelet would, a rollout in
progress, a rollout past its deadline, and a gateway refusing a pool, each read back as seed 004's
endpoint state; the CLI with a kubeconfig gives the same report.

The control plane has no nodes: pods stay Pending until a test sets their status, and the
Deployment controller computes readyReplicas, updatedReplicas and conditions as on GKE.
"""

from __future__ import annotations

import json
import subprocess
import sys

from igw.kube import KubeClient, LocalCluster, until
from igw.kube.status_source import cluster_report

from .dataplane import set_pod_status
from .gke_standins import gke_standin_crds
from .manifests import install_crds, relocate, stack_manifests

CLUSTER_SCOPED = {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"}


def endpoint(report: dict, name: str) -> dict:
    return next(e for e in report["endpoints"] if e["name"] == name)


def summary(report: dict, name: str) -> tuple:
    e = endpoint(report, name)
    s = e["served_entities"][0]["state"]
    return e["state"]["ready"], e["state"]["config_update"], s["deployment"], s["deployment_state_message"]


def pods_of(admin: KubeClient, namespace: str, app: str) -> list[dict]:
    return admin.list("v1", "Pod", namespace, label_selector=f"app={app}")["items"]


def make_ready(admin: KubeClient, namespace: str, app: str, n: int) -> None:
    pods = until(lambda: (p := pods_of(admin, namespace, app)) and len(p) >= n and p, timeout=60, what=f"{n} pods of {app}")
    for i, pod in enumerate(sorted(pods, key=lambda p: p["metadata"]["name"])[:n]):
        set_pod_status(admin, namespace, pod["metadata"]["name"], ip=f"10.44.0.{10 + i}", ready=True)


def report_until(admin: KubeClient, namespace: str, check, what: str) -> dict:
    return until(lambda: (r := cluster_report("external", admin, namespace)) and check(r) and r, timeout=60, what=what)


def test_status_from_the_cluster(cluster: LocalCluster, admin: KubeClient, crds: dict, namespace: str) -> None:
    install_crds(admin, gke_standin_crds(), field_manager="real-k8s-tests")
    objects = relocate([o for o in stack_manifests("external") if o["kind"] not in CLUSTER_SCOPED], namespace)
    for obj in objects:
        admin.apply(obj, field_manager="inference-gateway")

    waiting = ("NOT_READY", "NOT_UPDATING", "DEPLOYMENT_CREATING", "0/2 pods ready: waiting for pods")
    report = report_until(admin, namespace, lambda r: len(pods_of(admin, namespace, "openai-chat-egress")) == 2
                          and summary(r, "gpt-4o-chat") == waiting, "pods created, the controller caught up")
    assert {e["state"]["ready"] for e in report["endpoints"]} == {"NOT_READY"}
    assert summary(report, "gpt-4o-chat") == waiting
    assert endpoint(report, "gpt-4o-chat")["served_entities"][0]["external_model"] == {
        "provider": "openai", "name": "gpt-4o", "task": "llm/v1/chat", "api_base": "https://api.openai.com/v1"}
    assert endpoint(report, "gpt-4o-chat")["tags"] == [{"key": "team", "value": "gen-ai"}]

    make_ready(admin, namespace, "openai-chat-egress", 2)
    report = report_until(admin, namespace, lambda r: summary(r, "gpt-4o-chat")[2] == "DEPLOYMENT_CREATING"
                          and summary(r, "gpt-4o-chat")[3].startswith("2/2"), "proxies ready, picker not")
    assert summary(report, "gpt-4o-chat")[3] == "2/2 pods ready: the pool's picker is not ready"
    make_ready(admin, namespace, "openai-chat-epp", 1)
    report = report_until(admin, namespace, lambda r: endpoint(r, "gpt-4o-chat")["state"]["ready"] == "READY", "gpt-4o-chat READY")
    assert summary(report, "gpt-4o-chat") == ("READY", "NOT_UPDATING", "DEPLOYMENT_READY", "2/2 pods ready")
    assert endpoint(report, "gpt-instruct")["state"]["ready"] == "NOT_READY"

    # An update: a new pod template. The old pods serve (maxUnavailable 0) until new ones are ready.
    egress = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "openai-chat-egress")
    egress["spec"]["template"]["metadata"]["annotations"]["inference-gateway.dev/models"] = "gpt-4o-mini"
    egress["spec"]["progressDeadlineSeconds"] = 3
    admin.apply(egress, field_manager="inference-gateway")
    report = report_until(admin, namespace, lambda r: endpoint(r, "gpt-4o-chat")["state"]["config_update"] == "IN_PROGRESS",
                          "rollout in progress")
    assert summary(report, "gpt-4o-chat")[:3] == ("READY", "IN_PROGRESS", "DEPLOYMENT_READY")
    assert "rollout of openai-chat-egress in progress (the old pods serve until the new ones are ready)" in summary(report, "gpt-4o-chat")[3]

    # The new pod never becomes ready: past progressDeadlineSeconds the deployment failed.
    report = report_until(admin, namespace, lambda r: summary(r, "gpt-4o-chat")[2] == "DEPLOYMENT_FAILED", "rollout deadline")
    ready, _, _, message = summary(report, "gpt-4o-chat")
    assert ready == "NOT_READY" and "Deployment openai-chat-egress: ProgressDeadlineExceeded: " in message

    # A gateway that refuses the pool.
    admin.patch("inference.networking.k8s.io/v1", "InferencePool", "openai-embeddings", {"status": {"parents": [{
        "parentRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "inference-gateway"},
        "conditions": [{"type": "Accepted", "status": "False", "reason": "NotSupportedByGateway", "message": "no",
                        "lastTransitionTime": "2026-12-02T00:00:00Z", "observedGeneration": 1}]}]}},
        namespace=namespace, subresource="status")
    report = cluster_report("external", admin, namespace)
    assert summary(report, "openai-embeddings")[2:] == (
        "DEPLOYMENT_FAILED", "0/1 pods ready: InferencePool Accepted False for inference-gateway: NotSupportedByGateway: no")

    # The CLI, with a kubeconfig: the same report, exit code 3 (an endpoint is not ready).
    r = subprocess.run([sys.executable, "-m", "igw.cli", "status", "--stack", "external", "--kubeconfig",
                        str(cluster.admin_kubeconfig), "--namespace", namespace, "--json"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 3, r.stderr
    assert json.loads(r.stdout)["endpoints"] == cluster_report("external", admin, namespace)["endpoints"]


def test_status_of_a_pool_scaled_to_zero(admin: KubeClient, crds: dict, namespace: str) -> None:
    """The scale-to-zero stack's pool: while its Deployment has 1 desired pod that is not ready it
    is being created; at 0 replicas set as KEDA sets them (no KEDA controller runs here) with its
    picker ready, it is READY and says why; the same 0 replicas without the ScaledObject that may
    idle it there is still not ready (someone scaled it down by hand)."""
    install_crds(admin, gke_standin_crds(), field_manager="real-k8s-tests")
    objects = relocate([o for o in stack_manifests("scale-to-zero") if o["kind"] not in CLUSTER_SCOPED], namespace)
    for obj in objects:
        admin.apply(obj, field_manager="inference-gateway")
    server, epp = "vllm-llama3-8b-instruct", "vllm-llama3-8b-instruct-epp"

    def status(report: dict) -> tuple[str, str, str]:
        ready, _, deployment, message = summary(report, "food-review")
        return ready, deployment, message

    make_ready(admin, namespace, epp, 1)
    report = report_until(admin, namespace, lambda r: status(r)[2] == "0/1 pods ready: waiting for pods", "server pod pending")
    assert status(report)[:2] == ("NOT_READY", "DEPLOYMENT_CREATING")

    admin.patch("apps/v1", "Deployment", server, {"spec": {"replicas": 0}}, namespace=namespace)
    report = report_until(admin, namespace, lambda r: status(r)[0] == "READY", "READY at zero")
    assert status(report) == ("READY", "DEPLOYMENT_READY",
                              "0/0 pods ready; scaled to zero: a request waits in the picker while a replica starts")

    admin.delete("keda.sh/v1alpha1", "ScaledObject", server, namespace=namespace)
    report = report_until(admin, namespace, lambda r: status(r) == ("NOT_READY", "DEPLOYMENT_CREATING", "0/0 pods ready: waiting for pods"),
                          "not ready without the ScaledObject, the controller caught up")
    assert status(report) == ("NOT_READY", "DEPLOYMENT_CREATING", "0/0 pods ready: waiting for pods")
