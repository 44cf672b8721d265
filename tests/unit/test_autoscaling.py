"""Autoscaling, scale to zero and flow control as config, as rendered objects, and as the policy the
local autoscaler runs: exact messages, exact manifests, the HPA/KEDA arithmetic."""

from __future__ import annotations

import copy

import pytest

from components.builders import autoscaling as b
from components.builders.inference_pool import picker_config
from components.builders.model_server import deployment
from components.catalog.runtimes import resolve_preset
from components.config.autoscaling import QUEUE_TARGET, KedaSettings, effective_autoscaling, flow_control_for
from components.stack_config import parse_stack_config
from igw.endpoint_state import PoolHealth, entity_deployment
from igw.local.autoscaler import DeploymentScaler, Policy, policies, recommend
from igw.local.rendered_objects import PlanError

from .config_cases import SERVING_BASE, config_problems

SERVER = SERVING_BASE["model_servers"][0]


def servers(**changes) -> list[dict]:
    return [{**copy.deepcopy(SERVER), **changes}]


def cfg_with(**server_changes):
    return parse_stack_config({**copy.deepcopy(SERVING_BASE), "model_servers": servers(**server_changes)})


# -- config --------------------------------------------------------------------------------------
def test_seed_002_scale_to_zero_alone_scales_from_zero_to_replicas_on_the_queue():
    s = cfg_with(scale_to_zero_enabled=True, replicas=3).model_servers[0]
    policy = effective_autoscaling(s)
    assert (policy.min_replicas, policy.max_replicas, policy.metric, policy.target) == (0, 3, "queue", QUEUE_TARGET)
    assert (policy.scale_down_delay, policy.polling_interval) == (300, 15)


def test_running_defaults_to_80_percent_of_max_num_seqs():
    s = cfg_with(autoscaling={"max_replicas": 4, "metric": "running"}, extra_args=["--max-num-seqs", "64"]).model_servers[0]
    assert effective_autoscaling(s).target == 51


@pytest.mark.parametrize("changes, expected", [
    ({"autoscaling": {"max_replicas": 4}, "replicas": 2},
     "model_servers[0].replicas: 2 is set, but the autoscaler owns the replica count; remove replicas and set "
     "autoscaling.min_replicas / max_replicas"),
    ({"autoscaling": {"min_replicas": 1, "max_replicas": 4}, "scale_to_zero_enabled": True},
     "model_servers[0].scale_to_zero_enabled: true needs autoscaling.min_replicas 0 (it is 1)"),
    ({"autoscaling": {"max_replicas": 4, "metric": "running"}},
     "model_servers[0].autoscaling.target: metric 'running' needs a target (requests in the batch per replica); set "
     "it below the server's batch limit, or set --max-num-seqs in extra_args to default to 80% of it"),
])
def test_autoscaling_rules(changes, expected):
    assert config_problems(SERVING_BASE, model_servers=servers(**changes)) == [expected]


def test_min_above_max_names_the_path():
    (msg,) = config_problems(SERVING_BASE, model_servers=servers(autoscaling={"min_replicas": 5, "max_replicas": 2}))
    assert msg.startswith("model_servers[0].autoscaling") and "min_replicas (5) must be at most max_replicas (2)" in msg


def test_autoscaling_needs_managed_prometheus():
    assert config_problems(SERVING_BASE, model_servers=servers(scale_to_zero_enabled=True),
                           observability={"pod_monitoring": False}) == [
        "model_servers[0].autoscaling: reads the metrics Managed Prometheus scrapes; set observability.pod_monitoring: true"]


def test_a_pool_that_scales_to_zero_cannot_turn_flow_control_off():
    pools = [{"name": "llama", "model_server": "vllm-llama3-8b-instruct", "picker": {"flow_control": {"enabled": False}}}]
    assert config_problems(SERVING_BASE, model_servers=servers(scale_to_zero_enabled=True), pools=pools) == [
        "pools[0].picker.flow_control.enabled: false, but model server 'vllm-llama3-8b-instruct' scales to zero; "
        "its requests must wait in the picker while no replica runs"]


def test_flow_control_is_on_for_scale_to_zero_pools_and_rendered_into_the_picker_config():
    cfg = cfg_with(scale_to_zero_enabled=True)
    pool, server = cfg.pools[0], cfg.model_servers[0]
    assert flow_control_for(pool, server) is not None
    rendered = picker_config(pool, server, resolve_preset(server), cfg.models)
    assert rendered["flow_control"] == {"max_requests_per_priority": 1000, "ttl_s": 30.0, "no_endpoint_ttl_s": 60.0}
    fixed = parse_stack_config(SERVING_BASE)
    assert "flow_control" not in picker_config(fixed.pools[0], fixed.model_servers[0], resolve_preset(fixed.model_servers[0]), fixed.models)


def test_an_autoscaled_deployment_leaves_its_replica_count_to_the_autoscaler():
    auto = cfg_with(scale_to_zero_enabled=True).model_servers[0]
    fixed = cfg_with(replicas=3).model_servers[0]
    assert "replicas" not in deployment(auto, "ns", resolve_preset(auto), None, 130, None, None)["spec"]
    assert deployment(fixed, "ns", resolve_preset(fixed), None, 130, None, None)["spec"]["replicas"] == 3


# -- rendered objects ----------------------------------------------------------------------------
POLICY = cfg_with(autoscaling={"min_replicas": 0, "max_replicas": 4, "target": 2, "scale_down_delay": 20,
                               "polling_interval": 1}).model_servers[0].autoscaling


def test_scaled_object_exactly():
    so = b.scaled_object("llama", POLICY, ["pool-a"], project="p1", cluster="c1", namespace="ns", labels={"a": "b"})
    url = "https://monitoring.googleapis.com/v1/projects/p1/location/global/prometheus"
    held = '(sum(picker_flow_queued_requests{cluster="c1",namespace="ns",job=~"pool-a-epp"}) or vector(0))'
    waiting = '(sum(vllm:num_requests_waiting{cluster="c1",namespace="ns",job="llama"}) or vector(0))'
    running = '(sum(vllm:num_requests_running{cluster="c1",namespace="ns",job="llama"}) or vector(0))'
    assert so == {
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": {"name": "llama", "namespace": "ns", "labels": {"a": "b"},
                     "annotations": {"inference-gateway.dev/autoscaling-metric": "queue",
                                     "inference-gateway.dev/autoscaling-pools": "pool-a"}},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "llama"},
            "minReplicaCount": 0, "maxReplicaCount": 4, "pollingInterval": 1, "cooldownPeriod": 20,
            "advanced": {"horizontalPodAutoscalerConfig": {"behavior": {
                "scaleDown": {"stabilizationWindowSeconds": 20}, "scaleUp": {"stabilizationWindowSeconds": 0}}}},
            "triggers": [
                {"type": "prometheus", "name": "demand", "metricType": "AverageValue",
                 "metadata": {"serverAddress": url, "query": f"{waiting} + {held}", "threshold": "2",
                              "activationThreshold": "0"},
                 "authenticationRef": {"name": "managed-prometheus"}},
                {"type": "prometheus", "name": "activity", "metricType": "AverageValue",
                 "metadata": {"serverAddress": url, "query": f"{waiting} + {running} + {held}", "threshold": "1e+06",
                              "activationThreshold": "0"},
                 "authenticationRef": {"name": "managed-prometheus"}},
            ],
        },
    }


def test_keda_reads_managed_prometheus_as_its_operator():
    assert b.trigger_authentication("ns") == {"apiVersion": "keda.sh/v1alpha1", "kind": "TriggerAuthentication",
                                              "metadata": {"name": "managed-prometheus", "namespace": "ns"},
                                              "spec": {"podIdentity": {"provider": "gcp"}}}
    assert b.keda_operator_member("p1", "42", KedaSettings()) == (
        "principal://iam.googleapis.com/projects/42/locations/global/workloadIdentityPools/p1.svc.id.goog/subject/ns/keda/sa/keda-operator")


# -- the local policy ----------------------------------------------------------------------------
P = Policy("llama", "ns", min_replicas=0, max_replicas=4, metric="queue", target=2.0, scale_down_delay=20,
           polling_interval=1, pools=("pool-a",))


@pytest.mark.parametrize("current, demand, activity, expected", [
    (0, 0, 0, 0),      # idle at zero stays at zero
    (0, 1, 1, 1),      # one held request wakes it (KEDA activation)
    (0, 7, 7, 4),      # ceil(7 / 2) = 4
    (1, 0, 4, 1),      # a full batch and an empty queue keeps the replica (activity)
    (1, 0, 0, 0),      # nothing at all: zero allowed
    (2, 4.3, 9, 2),    # within 10% of the target: unchanged
    (2, 4.5, 9, 3),
    (3, 30, 30, 4),    # capped at max
])
def test_recommend(current, demand, activity, expected):
    assert recommend(current, demand, activity, P) == expected


def test_scale_down_waits_for_the_window_scale_up_does_not():
    sc = DeploymentScaler(P, slots=[], active=3)
    sc.recent.append((95.0, 3))
    assert sc.decide(100.0, 1.0, 1.0) == 3     # 3 recommended 5 s ago
    assert sc.decide(116.0, 1.0, 1.0) == 1     # 21 s later: only 1s in the window
    sc.active = 1
    assert sc.decide(117.0, 8.0, 8.0) == 4     # up at once


def test_the_policy_is_read_from_the_rendered_scaled_object():
    rendered = b.scaled_object("llama", POLICY, ["pool-a"], project="p", cluster="c", namespace="ns")
    assert policies([rendered]) == {"llama": P}
    foreign = copy.deepcopy(rendered)
    foreign["spec"]["triggers"] = foreign["spec"]["triggers"][:1]
    with pytest.raises(PlanError, match=r"ScaledObject ns/llama: not one of ours"):
        policies([foreign])


# -- endpoint state (seed 004's READY / NOT_READY) of a pool at zero ------------------------------
@pytest.mark.parametrize("picker_ready, expected", [
    (True, ("DEPLOYMENT_READY", "0/0 pods ready; scaled to zero: a request waits in the picker while a replica starts")),
    (False, ("DEPLOYMENT_CREATING", "0/0 pods ready: waiting for pods")),
])
def test_a_pool_scaled_to_zero_is_ready_while_its_picker_is(picker_ready, expected):
    assert entity_deployment(PoolHealth(0, 0, picker_ready, scaled_to_zero=True)) == expected
