"""Model-server autoscaling on GKE (pure): a KEDA ScaledObject per autoscaled server, reading the
demand from Google Cloud Managed Prometheus, and what KEDA needs to read it.

Why KEDA and not a plain HorizontalPodAutoscaler: an HPA cannot scale to zero (minReplicas >= 1
unless the HPAScaleToZero gate, alpha until Kubernetes 1.37 and beta from it; GKE documents HPA
to and from zero only from 1.37 with its AutoscalingMetric resource, whose schema is not published)
and needs a metrics adapter for Managed Prometheus metrics (the Custom Metrics Stackdriver
Adapter). KEDA is GKE's documented way to scale LLM servers to zero ("Scale to zero using KEDA"):
it activates a Deployment from 0 to 1 on any query result above zero, and from 1 up it creates and
drives an HPA itself. Its Prometheus trigger queries Managed Prometheus through its PromQL API
(`https://monitoring.googleapis.com/v1/projects/<project>/location/global/prometheus`) with the
operator's Workload Identity (`podIdentity.provider: gcp`, `roles/monitoring.viewer`).

The demand is one PromQL sum per server, averaged per replica by KEDA (AverageValue):

    queue:   sum(vllm:num_requests_waiting of its pods) + sum(picker_flow_queued_requests of its pools)
    running: sum(vllm:num_requests_running of its pods) + sum(picker_flow_queued_requests of its pools)

The picker's term is what wakes a pool at zero (no vLLM pod exists to report a queue), and what
its flow-control queue holds back from vLLM's queues at saturation. A second trigger, `activity`
(running + waiting + held, with a threshold no load reaches), only keeps a replica while any
request is in flight: on the queue alone a pool serving exactly its capacity (a full batch, an
empty queue) would read 0 and be scaled to zero under its running requests. `igw up` runs the same policy
on simulator processes (igw/local/autoscaler.py), reading the same two metrics from the replicas
and the pickers directly.
"""

from __future__ import annotations

from typing import Any

from ..config.autoscaling import KedaSettings, ServerAutoscaling

KEDA_API_VERSION = "keda.sh/v1alpha1"
KEDA_CHART_REPO = "https://kedacore.github.io/charts"
TRIGGER_AUTH_NAME = "managed-prometheus"
METRIC_ANNOTATION = "inference-gateway.dev/autoscaling-metric"
"""On the ScaledObject: queue | running, so a reader (igw up) knows the metric without PromQL."""
POOLS_ANNOTATION = "inference-gateway.dev/autoscaling-pools"
"""On the ScaledObject: the InferencePools whose pickers' held requests count as demand."""
SERVER_METRIC = {"queue": "vllm:num_requests_waiting", "running": "vllm:num_requests_running"}
ACTIVITY_THRESHOLD = 1_000_000
"""The activity trigger's per-replica target: never reached, so it asks for 1 replica at most."""
PICKER_DEMAND = "picker_flow_queued_requests"
"""The picker's gauge of held requests (picker/endpoint_picker/selfmetrics.py)."""
MONITORING_VIEWER = "roles/monitoring.viewer"


def gmp_query_url(project: str) -> str:
    """Managed Prometheus' Prometheus-compatible query API for a project (KEDA's serverAddress)."""
    return f"https://monitoring.googleapis.com/v1/projects/{project}/location/global/prometheus"


def demand_query(server: str, pools: list[str], metrics: list[str], *, cluster: str, namespace: str) -> str:
    """The sum of the server's `metrics` over its pods plus the requests its pools' pickers hold,
    in PromQL. Series are selected by the labels Managed Prometheus adds: the cluster, the
    namespace and `job`, the PodMonitoring's name (the server's name; `<pool>-epp` for a pool's
    pickers). `or vector(0)`: a pool at zero has no vLLM series at all, and a sum over nothing is
    empty, not 0."""
    scope = f'cluster="{cluster}",namespace="{namespace}"'
    jobs = "|".join(f"{p}-epp" for p in sorted(pools))
    terms = [f'(sum({m}{{{scope},job="{server}"}}) or vector(0))' for m in metrics]
    terms.append(f'(sum({PICKER_DEMAND}{{{scope},job=~"{jobs}"}}) or vector(0))')
    return " + ".join(terms)


def trigger_authentication(namespace: str) -> dict[str, Any]:
    """How the ScaledObjects of the namespace reach Managed Prometheus: KEDA's own Workload
    Identity (namespaced, so the stack's objects stay in its namespace)."""
    return {
        "apiVersion": KEDA_API_VERSION,
        "kind": "TriggerAuthentication",
        "metadata": {"name": TRIGGER_AUTH_NAME, "namespace": namespace},
        "spec": {"podIdentity": {"provider": "gcp"}},
    }


def scaled_object(server: str, policy: ServerAutoscaling, pools: list[str], *, project: str, cluster: str,
                  namespace: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    """The ScaledObject for one model-server Deployment.

    - min/max replicas, the poll interval, and `cooldownPeriod` = scale_down_delay (1 -> 0 only
      after the demand stayed at zero that long);
    - the HPA KEDA creates scales down to the highest count recommended during the last
      scale_down_delay seconds (`stabilizationWindowSeconds`), and up at once (a cold start is
      slow enough); the HPA's default rate limits apply;
    - the triggers: the demand query with `threshold` = the per-replica target (AverageValue) and
      `activationThreshold` 0 (any held request wakes a pool at zero), and the activity query
      (keeps one replica while anything runs).
    """
    assert policy.target is not None, "effective_autoscaling() gives every policy a target"
    return {
        "apiVersion": KEDA_API_VERSION,
        "kind": "ScaledObject",
        "metadata": {
            "name": server,
            "namespace": namespace,
            "labels": dict(labels or {}),
            "annotations": {METRIC_ANNOTATION: policy.metric, POOLS_ANNOTATION: ",".join(sorted(pools))},
        },
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": server},
            "minReplicaCount": policy.min_replicas,
            "maxReplicaCount": policy.max_replicas,
            "pollingInterval": policy.polling_interval,
            "cooldownPeriod": policy.scale_down_delay,
            "advanced": {"horizontalPodAutoscalerConfig": {"behavior": {
                "scaleDown": {"stabilizationWindowSeconds": policy.scale_down_delay},
                "scaleUp": {"stabilizationWindowSeconds": 0},
            }}},
            "triggers": [
                _trigger("demand", demand_query(server, pools, [SERVER_METRIC[policy.metric]], cluster=cluster,
                                                namespace=namespace), policy.target, project),
                _trigger("activity", demand_query(server, pools, list(SERVER_METRIC.values()), cluster=cluster,
                                                  namespace=namespace), ACTIVITY_THRESHOLD, project),
            ],
        },
    }


def _trigger(name: str, query: str, threshold: float, project: str) -> dict[str, Any]:
    """A Prometheus trigger on Managed Prometheus: replicas = ceil(value / threshold) (AverageValue),
    active (0 -> 1) when the value is above 0."""
    return {
        "type": "prometheus",
        "name": name,
        "metricType": "AverageValue",
        "metadata": {"serverAddress": gmp_query_url(project), "query": query, "threshold": f"{threshold:g}",
                     "activationThreshold": "0"},
        "authenticationRef": {"name": TRIGGER_AUTH_NAME},
    }


def keda_operator_member(project: str, project_number: str, keda: KedaSettings) -> str:
    """KEDA's operator as an IAM principal (Workload Identity Federation for GKE), as GKE's "Scale
    to zero using KEDA" grants it roles/monitoring.viewer."""
    return (f"principal://iam.googleapis.com/projects/{project_number}/locations/global/workloadIdentityPools/"
            f"{project}.svc.id.goog/subject/ns/{keda.namespace}/sa/{keda.service_account}")


def keda_release(keda: KedaSettings) -> dict[str, Any]:
    """The KEDA Helm release (chart `keda` from kedacore's repository, chart version = KEDA's)."""
    return {
        "name": "keda",
        "chart": "keda",
        "version": keda.version,
        "namespace": keda.namespace,
        "create_namespace": True,
        "repository_opts": {"repo": KEDA_CHART_REPO},
    }
