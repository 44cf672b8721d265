"""Serving config: rejections with exact messages, before any resource exists."""

from __future__ import annotations

import copy


from components.stack_config import parse_stack_config

from .config_cases import SERVING_BASE, config_problems

BASE = SERVING_BASE
SERVER = BASE["model_servers"][0]


def problems(**changes) -> list[str]:
    return config_problems(BASE, **changes)


def server(**changes) -> list[dict]:
    return [{**copy.deepcopy(SERVER), **changes}]


def test_base_is_valid():
    cfg = parse_stack_config(BASE)
    s = cfg.model_servers[0]
    assert s.lora_enabled and s.runtime == "vllm" and s.drain.pre_stop_seconds == 30 and s.startup_timeout_seconds == 3600


def test_tensor_parallel_size_larger_than_the_machine():
    assert problems(model_servers=server(tensor_parallel_size=2)) == [
        "model_servers[0].tensor_parallel_size: 2 needs 2 GPUs but a3-highgpu-1g has 1; use at most 1 or a larger machine type"
    ]


def test_tensor_parallel_size_must_divide_the_gpus():
    assert problems(node_pools=[{"machine_type": "a3-highgpu-8g"}], model_servers=server(tensor_parallel_size=3)) == [
        "model_servers[0].tensor_parallel_size: 3 does not divide the 8 GPUs of a3-highgpu-8g; use one of 1, 2, 4, 8"
    ]


def test_duplicate_adapter_ids():
    adapters = [{"id": "a", "source": "x"}, {"id": "a", "source": "y"}]
    assert problems(model_servers=server(lora_adapters=adapters)) == [
        "model_servers[0].lora_adapters: adapter id 'a' appears twice; adapter ids must be unique"
    ]


def test_weights_must_sum_to_100():
    targets = [{"model": "food-review", "weight": 90}, {"model": "meta-llama/Llama-3.1-8B-Instruct", "weight": 20}]
    assert problems(models=[{"name": "food-review", "pool": "llama", "targets": targets}]) == [
        "models[0].targets: weights sum to 110; they are traffic percentages and must sum to 100 "
        "(got food-review=90, meta-llama/Llama-3.1-8B-Instruct=20)"
    ]


def test_weight_out_of_range():
    targets = [{"model": "food-review", "weight": 101}]
    (msg,) = problems(models=[{"name": "food-review", "pool": "llama", "targets": targets}])
    assert msg.startswith("models[0].targets[0].weight: 101 is invalid")


def test_unknown_runtime_override_field():
    assert problems(model_servers=server(runtime_overrides={"imagee": "x"})) == [
        "model_servers[0].runtime_overrides.imagee: unknown field; allowed: image, command, args, port, grpc_port, "
        "health_path, readiness_path, metrics_path, protocol, routes, picker_signals, env, run_as_user"
    ]


def test_unknown_runtime():
    (msg,) = problems(model_servers=server(runtime="sglang", lora_adapters=[]))
    assert msg == (
        "model_servers[0].runtime: 'sglang' is not supported; use vllm, caikit-tgis, caikit-standalone, tgis, openvino or triton"
    )


def test_unknown_picker_signal():
    assert problems(model_servers=server(runtime_overrides={"picker_signals": ["gpu"]})) == [
        "model_servers[0].runtime_overrides.picker_signals[0]: 'gpu' is not supported; use queue, kv, lora or prefix"
    ]


def test_grpc_needs_a_grpc_port():
    assert problems(model_servers=server(runtime_overrides={"protocol": "grpc"})) == [
        "model_servers[0]: runtime_overrides.protocol is grpc but runtime 'vllm' has no gRPC port; set runtime_overrides.grpc_port"
    ]


def test_adapters_need_vllm():
    assert problems(model_servers=server(runtime="triton")) == [
        "model_servers[0]: lora_adapters need the vllm runtime; runtime is 'triton'"
    ]


def test_enable_lora_needs_vllm():
    assert problems(model_servers=server(runtime="triton", lora_adapters=[], enable_lora=True), models=[]) == [
        "model_servers[0]: enable_lora needs the vllm runtime; runtime is 'triton'"
    ]


def test_adapters_with_lora_disabled():
    assert problems(model_servers=server(enable_lora=False)) == [
        "model_servers[0]: lora_adapters are set but enable_lora is false; remove the adapters or enable LoRA"
    ]


def test_max_cpu_loras_at_least_max_loras():
    assert problems(model_servers=server(max_loras=4, max_cpu_loras=2)) == [
        "model_servers[0]: max_cpu_loras (2) must be at least max_loras (4)"
    ]


def test_target_must_be_served_by_the_pool():
    targets = [{"model": "unknown-adapter", "weight": 100}]
    assert problems(models=[{"name": "food-review", "pool": "llama", "targets": targets}]) == [
        "models[0].targets[0].model: 'unknown-adapter' is not served by pool 'llama'; use its base model or a LoRA "
        "adapter id (food-review, meta-llama/Llama-3.1-8B-Instruct)"
    ]


def test_routing_object_names_must_not_collide():
    adapters = [{"id": "food-review", "source": "x"}, {"id": "Food_Review", "source": "y"}]
    models = [{"name": "food-review", "pool": "llama"}, {"name": "Food_Review", "pool": "llama"}]
    assert problems(model_servers=server(lora_adapters=adapters), models=models) == [
        "models[1].name: 'Food_Review' and models[0].name 'food-review' both name their routing objects "
        "'food-review' in namespace 'igw'; rename one"
    ]


def test_startup_timeout_floor():
    (msg,) = problems(model_servers=server(startup_timeout_seconds=10))
    assert msg.startswith("model_servers[0].startup_timeout_seconds: 10 is invalid")


def test_failure_mode_values():
    assert problems(pools=[{"name": "llama", "model_server": "vllm-llama3-8b-instruct", "failure_mode": "Open"}]) == [
        "pools[0].failure_mode: 'Open' is not supported; use FailOpen or FailClose"
    ]


def test_picker_timeouts_are_bounded():
    pools = [{**copy.deepcopy(BASE["pools"][0]), "picker": {"message_timeout_ms": 5, "lease_duration_seconds": 90}}]
    assert problems(pools=pools) == [
        "pools[0].picker.lease_duration_seconds: 90 is invalid (input should be less than or equal to 60)",
        "pools[0].picker.message_timeout_ms: 5 is invalid (input should be greater than or equal to 10)",
    ]


def test_critical_traffic_is_refused_last():
    pools = [{**copy.deepcopy(BASE["pools"][0]), "picker": {"overload_threshold": 6, "critical_overload_threshold": 3}}]
    assert problems(pools=pools) == [
        "pools[0].picker: critical_overload_threshold (3) must be at least overload_threshold (6)"
    ]
