"""Runtime presets (seed 003's catalogue) and runtime_overrides."""

from __future__ import annotations

import re

import pytest

from components.catalog.runtime_preset import Route
from components.catalog.runtimes import PRESETS, resolve_preset
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
    assert paths(p) == {"/v1/completions", "/v1/chat/completions", "/v1/embeddings", "/v1/responses", "/v1/models"}
    assert (p.health_path, p.readiness_path, p.metrics_path, p.protocol, p.port) == ("/health", "/health", "/metrics", "http", 8000)
    assert p.picker_signals == {"queue", "kv", "lora", "prefix"}
    assert p.app_protocol == "http" and p.scrape_engine == "vllm"


CAIKIT_INFO = {"/info/models", "/info/version", "/info/runtime"}
CAIKIT_INFO_GRPC = {"/caikit.runtime.info.InfoService/GetModelsInfo", "/caikit.runtime.info.InfoService/GetRuntimeInfo"}


def test_caikit_tgis_serves_text_generation_rest_and_grpc():
    p = PRESETS["caikit-tgis"]
    tasks = {"/api/v1/task/text-generation", "/api/v1/task/server-streaming-text-generation"}
    assert paths(p, "http") == tasks | CAIKIT_INFO and all(r.match == "Exact" for r in p.routes)
    assert paths(p, "grpc") == {"/caikit.runtime.Nlp.NlpService/TextGenerationTaskPredict",
                                "/caikit.runtime.Nlp.NlpService/ServerStreamingTextGenerationTaskPredict"} | CAIKIT_INFO_GRPC
    assert (p.protocol, p.port, p.grpc_port, p.invocations_path, p.multi_model) == (
        "http", 8080, 8085, "/api/v1/task/text-generation", True)


def test_caikit_standalone_serves_the_embedding_tasks_rest_and_grpc():
    p = PRESETS["caikit-standalone"]
    tasks = ("embedding", "embedding-tasks", "sentence-similarity", "sentence-similarity-tasks", "rerank", "rerank-tasks")
    assert paths(p, "http") == {f"/api/v1/task/{t}" for t in tasks} | CAIKIT_INFO
    rpcs = ("EmbeddingTask", "EmbeddingTasks", "SentenceSimilarityTask", "SentenceSimilarityTasks", "RerankTask", "RerankTasks")
    assert paths(p, "grpc") == {f"/caikit.runtime.Nlp.NlpService/{m}Predict" for m in rpcs} | CAIKIT_INFO_GRPC
    assert (p.invocations_path, p.multi_model) == ("/api/v1/task/embedding", True)


def test_vllm_admin_endpoints_are_internal_never_client_api():
    p = PRESETS["vllm"]
    internal = {r.path for r in p.internal}
    assert {"/v1/load_lora_adapter", "/v1/unload_lora_adapter", "/metrics", "/reset_prefix_cache", "/sleep",
            "/wake_up", "/start_profile", "/stop_profile", "/health"} <= internal
    assert not [(a, b) for a in p.routes for b in p.internal if a.overlaps(b)]


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_no_runtime_exposes_its_own_internal_endpoints(name):
    p = PRESETS[name]
    assert not [(a, b) for a in p.routes for b in p.internal if a.overlaps(b)]
    assert p.health_path in {r.path for r in p.internal} or any(r.covers(p.health_path) for r in p.internal)


def test_route_covers_and_overlaps_follow_gateway_api_path_prefix():
    prefix = Route("/info/", "PathPrefix")
    assert prefix.covers("/info") and prefix.covers("/info/") and prefix.covers("/info/models")
    assert not prefix.covers("/infox") and not prefix.covers("/")
    assert Route("/", "PathPrefix").covers("/metrics")
    assert Route("/v1/models").covers("/v1/models") and not Route("/v1/models").covers("/v1/models/x")
    assert Route("/", "PathPrefix").overlaps(Route("/metrics")) and Route("/metrics").overlaps(Route("/", "PathPrefix"))
    assert not Route("/v1/", "PathPrefix").overlaps(Route("/metrics"))


def test_tgis_is_grpc_and_sets_h2c():
    p = PRESETS["tgis"]
    assert paths(p, "grpc") == {f"/fmaas.GenerationService/{m}" for m in ("Generate", "GenerateStream", "Tokenize", "ModelInfo")}
    assert p.protocol == "grpc" and p.app_protocol == "kubernetes.io/h2c" and p.target_port == p.grpc_port


@pytest.mark.parametrize("name", ["openvino", "triton"])
def test_kserve_v2_rest_and_grpc(name):
    p = PRESETS[name]
    # server metadata; infer, model metadata and readiness per served model ({model}: no other
    # model is addressable), also under /versions/<v>
    assert paths(p, "http") == {"/v2", "/v2/models/{model}", "/v2/models/{model}/ready", "/v2/models/{model}/infer",
                                "/v2/models/{model}/versions/"}
    assert paths(p, "grpc") == {f"/inference.GRPCInferenceService/{m}" for m in ("ModelInfer", "ModelReady", "ModelMetadata", "ServerMetadata")}
    assert Route("/v2/repository/", "PathPrefix") in p.internal  # model load/unload
    assert {"/inference.GRPCInferenceService/ServerLive", "/inference.GRPCInferenceService/ServerReady"} <= {r.path for r in p.internal}
    assert p.grpc_port is not None and p.protocol == "http"
    assert (p.invocations_path, p.multi_model) == ("/v2/models/{model}/infer", True)


def test_triton_health_is_internal():
    assert Route("/v2/health/", "PathPrefix") in PRESETS["triton"].internal
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
