"""Runtime presets (seed 003's catalogue) and runtime_overrides."""

from __future__ import annotations

import re

import pytest

from components.catalog.runtimes import PRESETS, Route, resolve_preset
from components.config.serving import ModelServerConfig


def server(**kw) -> ModelServerConfig:
    return ModelServerConfig(**{"name": "srv", "model": "org/model", **kw})


def paths(preset, protocol=None):
    return {r.path for r in preset.routes if protocol is None or r.protocol == protocol}


def test_every_runtime_of_the_config_has_a_preset():
    from typing import get_args

    from components.config.serving import Runtime

    assert set(PRESETS) == set(get_args(Runtime))


def test_vllm_serves_the_openai_api():
    p = PRESETS["vllm"]
    assert paths(p) == {"/v1/completions", "/v1/chat/completions", "/v1/embeddings", "/v1/models", "/tokenize", "/detokenize", "/version"}
    assert (p.health_path, p.readiness_path, p.metrics_path, p.protocol, p.port) == ("/health", "/health", "/metrics", "http", 8000)
    assert p.picker_signals == {"queue", "kv", "lora", "prefix"}
    assert p.app_protocol == "http" and p.scrape_engine == "vllm"


def test_caikit_tgis_rest_paths():
    assert paths(PRESETS["caikit-tgis"]) == {"/api/v1/task/text-generation", "/api/v1/task/server-streaming-text-generation"}


def test_caikit_standalone_paths():
    assert paths(PRESETS["caikit-standalone"]) == {
        "/api/v1/task/embedding", "/api/v1/task/embedding-tasks",
        "/api/v1/task/sentence-similarity", "/api/v1/task/sentence-similarity-tasks",
        "/api/v1/task/rerank", "/api/v1/task/rerank-tasks", "/info/models",
    }


def test_tgis_is_grpc_and_sets_h2c():
    p = PRESETS["tgis"]
    assert paths(p, "grpc") == {"/fmaas.GenerationService/Generate", "/fmaas.GenerationService/GenerateStream"}
    assert p.protocol == "grpc" and p.app_protocol == "kubernetes.io/h2c" and p.target_port == p.grpc_port


@pytest.mark.parametrize("name", ["openvino", "triton"])
def test_kserve_v2_rest_and_grpc(name):
    p = PRESETS[name]
    assert Route("/v2/models/", "PathPrefix") in p.routes  # /v2/models/<name>/infer
    assert "/inference.GRPCInferenceService/ModelInfer" in paths(p, "grpc")
    assert p.grpc_port is not None and p.protocol == "http"


def test_triton_health_routes():
    assert {"/v2/health/ready", "/v2/health/live"} <= paths(PRESETS["triton"])
    assert (PRESETS["triton"].health_path, PRESETS["triton"].readiness_path) == ("/v2/health/live", "/v2/health/ready")


@pytest.mark.parametrize("name", sorted(set(PRESETS) - {"vllm"}))
def test_non_vllm_runtimes_schedule_on_in_flight_load(name):
    assert PRESETS[name].picker_signals == frozenset() and PRESETS[name].scrape_engine == "none"


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_images_are_pinned(name):
    image = PRESETS[name].image
    tag = image.rsplit(":", 1)[-1]
    if name == "caikit-standalone":
        pytest.xfail("Open Data Hub publishes only channel tags for caikit-nlp; pin by digest via runtime_overrides.image")
    assert tag not in ("latest", "main", "stable", "fast") and re.search(r"\d", tag), image


def test_vllm_args_are_seed_001():
    s = server(model="meta-llama/Llama-3.1-8B-Instruct", max_loras=2, max_cpu_loras=12)
    assert resolve_preset(s).build_args(s) == [
        "--model", "meta-llama/Llama-3.1-8B-Instruct", "--tensor-parallel-size", "1", "--port", "8000",
        "--enable-lora", "--max-loras", "2", "--max-cpu-loras", "12",
    ]


def test_vllm_args_rank_and_extra():
    s = server(tensor_parallel_size=2, max_lora_rank=64, extra_args=["--max-model-len", "32768"])
    args = resolve_preset(s).build_args(s)
    assert args[args.index("--tensor-parallel-size") + 1] == "2"
    assert args[args.index("--max-lora-rank") + 1] == "64"
    assert args[-2:] == ["--max-model-len", "32768"]


def test_vllm_without_lora_has_no_lora_flags():
    s = server(enable_lora=False)
    assert not [a for a in resolve_preset(s).build_args(s) if "lora" in a]


def test_overrides_replace_fields():
    s = server(
        runtime="triton",
        runtime_overrides={
            "image": "nvcr.io/nvidia/tritonserver:25.01-py3",
            "protocol": "grpc",
            "health_path": "/v2/health/ready",
            "routes": [{"path": "/v2/models/", "match": "PathPrefix"}],
            "picker_signals": ["queue"],
            "env": {"A": "1"},
        },
    )
    p = resolve_preset(s)
    assert p.image.endswith(":25.01-py3") and p.protocol == "grpc" and p.app_protocol == "kubernetes.io/h2c"
    assert p.target_port == 8001 and p.health_path == "/v2/health/ready"
    assert p.routes == (Route("/v2/models/", "PathPrefix"),)
    assert p.picker_signals == {"queue"} and p.env == {"A": "1"}
    assert PRESETS["triton"].protocol == "http"  # the table itself is untouched


def test_args_override_replaces_the_builder():
    s = server(runtime_overrides={"args": ["--model", "x"]})
    assert resolve_preset(s).build_args(s) == ["--model", "x"]
