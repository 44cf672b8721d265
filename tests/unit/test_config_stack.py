"""Stack config validation: every rule fails before any resource, with the path, value and what is allowed."""

from __future__ import annotations


import pytest
import yaml

from components.config import config_values_from_stack_file
from components.stack_config import parse_stack_config
from igw.stackfile import STACKS_DIR

from .config_cases import SERVING_BASE, config_problems

BASE = {
    **SERVING_BASE,
    "gateways": [{"name": "gw", "class": "gke-l7-regional-external-managed", "routes": [{"name": "r", "pool": "llama"}]}],
}


def problems(**changes) -> list[str]:
    return config_problems(BASE, **changes)


def test_base_config_is_valid_and_derives_defaults():
    cfg = parse_stack_config(BASE)
    assert cfg.cluster_name == "igw-gke"
    assert cfg.deletion_protection is False
    assert [p.region for p in cfg.proxy_only_subnets] == ["us-central1"]
    assert cfg.node_pool_name(cfg.node_pools[0]) == "gpu-h100x1-a3h1"


def test_production_turns_deletion_protection_on():
    assert parse_stack_config({**BASE, "environment": "production"}).deletion_protection is True


@pytest.mark.parametrize("stack", ["dev", "prod", "local"])
def test_committed_stacks_are_valid(stack):
    ours, _ = config_values_from_stack_file(yaml.safe_load((STACKS_DIR / f"Pulumi.{stack}.yaml").read_text()))
    parse_stack_config(ours)


def test_unsupported_gateway_class_names_the_allowed_classes():
    assert problems(gateways=[{"name": "gw", "class": "gke-l7-global-external-managed"}]) == [
        "gateways[0].class: 'gke-l7-global-external-managed' is not supported; use gke-l7-regional-external-managed or gke-l7-rilb"
    ]


def test_unknown_key_lists_allowed_keys():
    (msg,) = problems(gateways=[{"name": "gw", "klass": "x"}])
    assert msg.startswith("gateways[0].klass: unknown field; allowed: name, class, listeners, static_address")


def test_gke_version_floor():
    assert problems(cluster={"min_master_version": "1.31.9"}) == [
        "cluster.min_master_version: '1.31.9' is too old; GKE Inference Gateway needs 1.32.3 or later"
    ]
    assert problems(cluster={"min_master_version": "1.32.2-gke.1182001"})[0].startswith("cluster.min_master_version: '1.32.2-gke.1182001' is too old")
    assert parse_stack_config({**BASE, "cluster": {"min_master_version": "1.32.3-gke.1000"}})


def test_routes_networking_mode_is_rejected():
    assert problems(cluster={"networking_mode": "ROUTES"}) == [
        "cluster.networking_mode: 'ROUTES' is not supported; GKE Inference Gateway needs a VPC-native cluster (use VPC_NATIVE)"
    ]


def test_predict_route_and_invoke_route_prefix_are_exclusive():
    route = {"name": "r", "pool": "llama", "predict_route": "/v1/completions", "invoke_route_prefix": "/*"}
    assert problems(gateways=[{"name": "gw", "routes": [route]}]) == [
        "gateways[0].routes[0]: set only one of predict_route, invoke_route_prefix or base_path"
    ]


def test_invoke_route_prefix_only_allows_star():
    route = {"name": "r", "pool": "llama", "invoke_route_prefix": "/v1/*"}
    assert problems(gateways=[{"name": "gw", "routes": [route]}]) == [
        "gateways[0].routes[0].invoke_route_prefix: '/v1/*' is not supported; '/*' is the only allowed invoke_route_prefix"
    ]


def test_traffic_split_weights_must_sum_to_100():
    model = {
        "name": "food-review",
        "pool": "llama",
        "targets": [{"model": "food-review", "weight": 90}, {"model": "meta-llama/Llama-3.1-8B-Instruct", "weight": 20}],
    }
    assert problems(models=[model]) == [
        "models[0].targets: weights sum to 110; they are traffic percentages and must sum to 100 "
        "(got food-review=90, meta-llama/Llama-3.1-8B-Instruct=20)"
    ]


def test_target_model_must_be_served_by_the_pool():
    model = {"name": "food-review", "pool": "llama", "targets": [{"model": "food-reviews", "weight": 100}]}
    assert problems(models=[model]) == [
        "models[0].targets[0].model: 'food-reviews' is not served by pool 'llama'; use its base model or a LoRA adapter id "
        "(food-review, meta-llama/Llama-3.1-8B-Instruct)"
    ]


def test_machine_type_decides_gpus_and_h200_is_rejected():
    assert problems(node_pools=[{"machine_type": "a3-ultragpu-8g", "autoscaling": {"max_nodes": 1}}]) == [
        "node_pools[0].machine_type: a3-ultragpu-8g carries H200 GPUs (nvidia-h200-141gb), not H100; use one of "
        "a3-highgpu-1g, a3-highgpu-2g, a3-highgpu-4g, a3-highgpu-8g, a3-edgegpu-8g, a3-megagpu-8g"
    ]


def test_tensor_parallel_size_must_fit_the_machine():
    server = dict(BASE["model_servers"][0], tensor_parallel_size=2)
    assert problems(model_servers=[server]) == [
        "model_servers[0].tensor_parallel_size: 2 needs 2 GPUs but a3-highgpu-1g has 1; use at most 1 or a larger machine type"
    ]


def test_gateway_region_needs_a_proxy_only_subnet():
    (msg,) = problems(network={"proxy_only_subnets": [{"region": "us-east4", "cidr": "10.130.0.0/23"}]})
    assert msg == (
        "network.proxy_only_subnets: gateway region 'us-central1' has no proxy-only subnet; regional gateways need one "
        "(add {region: us-central1, cidr: 10.129.0.0/23})"
    )


def test_every_problem_is_reported_at_once():
    found = problems(zones=["us-east4-a"], pools=[{"name": "llama", "model_server": "nope"}])
    assert "zones[0]: 'us-east4-a' is not in region 'us-central1'; use zones like us-central1-a" in found
    assert "pools[0].model_server: 'nope' is not a model server; use one of vllm-llama3-8b-instruct" in found
