"""Model-server runtime presets: one table, one row per runtime (seed 003's catalogue).

A preset says how to start the server and how the platform talks to it: image, command/args,
ports, health/readiness/metrics paths, protocol (http, or grpc -> the InferencePool's
``appProtocol: kubernetes.io/h2c``), the client API paths it serves (``routes``), the internal
endpoints it also answers (``internal``) and the picker signals its metrics provide (none -> the
picker schedules on its own in-flight counts only). ``runtime_overrides`` in stack config
replaces any field.

Exposed surface by allow-list: a gateway routes only ``routes`` (plus what a stack widens
explicitly, ``gateways[].routes[].expose``), for plain, predict, invoke and served-model routes
alike. Everything else the server answers - ``internal`` (adapter load/unload, metrics, cache
reset, sleep/wake, profiling, health) and anything unlisted - is never reachable from a gateway;
a widening or override that would reach an ``internal`` path is a config error
(``components/config/exposure.py``).

Images (public registries, pinned tags; override ``image`` to pin by digest):

- vllm: ``vllm/vllm-openai:v0.19.0``, published together with lora-syncer v1.2.1 in the
  GKE Inference Gateway image lists (seed 001 used ``:latest``).
- caikit-tgis: ``quay.io/opendatahub/caikit-tgis-serving:stable-4d0134e``, the Caikit runtime
  image built on TGIS that Open Data Hub's single-container runtime manifests use.
- caikit-standalone: ``quay.io/opendatahub/caikit-nlp:stable`` (Open Data Hub publishes only
  channel tags for it: pin by digest through ``runtime_overrides.image``).
- tgis: ``quay.io/opendatahub/text-generation-inference:stable-bafd218`` (deprecated upstream
  in OpenShift AI, seed 003; kept for existing gRPC clients).
- openvino: ``openvino/model_server:2024.4``.
- triton: ``nvcr.io/nvidia/tritonserver:24.08-py3``.

Non-vLLM runtimes read weights from ``/mnt/models`` (KServe's convention): mount them with
``gcs_bucket`` (Cloud Storage FUSE) or bake them into the image.

The row type and ``Route`` are in runtime_preset.py, each runtime's args builder in
runtime_args.py; this module is the table and ``resolve_preset``.
"""

from __future__ import annotations

import dataclasses

from .runtime_args import extra_only, openvino_args, tgis_args, triton_args, vllm_args
from .runtime_preset import MODELS_DIR, Route, RuntimePreset, ServerSpec


# -- the table --------------------------------------------------------------------------------------
# Client APIs: the OpenAI inference endpoints and model listing; Caikit tasks and model info;
# KServe v2 infer, model metadata and readiness (REST and gRPC); TGIS generation over gRPC.
_OPENAI = tuple(Route(p) for p in ("/v1/completions", "/v1/chat/completions", "/v1/embeddings", "/v1/responses", "/v1/models"))
# Caikit (seed 003): each runtime's own tasks over REST and as caikit.runtime.Nlp.NlpService
# RPCs (model in the `mm-model-id` header), plus model and runtime info.
_CAIKIT_INFO = tuple(Route(p) for p in ("/info/models", "/info/version", "/info/runtime")) + tuple(
    Route(f"/caikit.runtime.info.InfoService/{m}", protocol="grpc") for m in ("GetModelsInfo", "GetRuntimeInfo")
)


def _caikit(tasks: tuple[str, ...], rpcs: tuple[str, ...]) -> tuple[Route, ...]:
    return (tuple(Route(f"/api/v1/task/{t}") for t in tasks)
            + tuple(Route(f"/caikit.runtime.Nlp.NlpService/{m}", protocol="grpc") for m in rpcs) + _CAIKIT_INFO)


_CAIKIT_TGIS = _caikit(("text-generation", "server-streaming-text-generation"),
                       ("TextGenerationTaskPredict", "ServerStreamingTextGenerationTaskPredict"))
_CAIKIT_STANDALONE = _caikit(
    ("embedding", "embedding-tasks", "sentence-similarity", "sentence-similarity-tasks", "rerank", "rerank-tasks"),
    tuple(f"{t}Predict" for t in ("EmbeddingTask", "EmbeddingTasks", "SentenceSimilarityTask", "SentenceSimilarityTasks",
                                  "RerankTask", "RerankTasks")),
)
# KServe v2: server metadata; per served model ({model}) metadata, readiness and infer, with or
# without /versions/<v>. Health (/v2/health/*, ServerLive, ServerReady) stays internal.
_KSERVE_V2_REST = (Route("/v2"),) + tuple(
    Route(p) for p in ("/v2/models/{model}", "/v2/models/{model}/ready", "/v2/models/{model}/infer")
) + (Route("/v2/models/{model}/versions/", "PathPrefix"),)
_KSERVE_V2_GRPC = tuple(
    Route(f"/inference.GRPCInferenceService/{m}", protocol="grpc")
    for m in ("ModelInfer", "ModelReady", "ModelMetadata", "ServerMetadata")
)
_TGIS_GRPC = tuple(
    Route(f"/fmaas.GenerationService/{m}", protocol="grpc") for m in ("Generate", "GenerateStream", "Tokenize", "ModelInfo")
)

# Admin and internal endpoints (vLLM's api_server, Triton / OpenVINO model control, health).
_VLLM_INTERNAL = tuple(
    Route(p)
    for p in (
        "/metrics", "/health", "/ping", "/load", "/version", "/server_info",
        "/v1/load_lora_adapter", "/v1/unload_lora_adapter",  # VLLM_ALLOW_RUNTIME_LORA_UPDATING
        "/reset_prefix_cache", "/reset_mm_cache", "/sleep", "/wake_up", "/is_sleeping",
        "/start_profile", "/stop_profile", "/collective_rpc", "/scale_elastic_ep", "/is_scaling_elastic_ep",
        "/pause", "/resume",
    )
)
_KSERVE_V2_INTERNAL = (
    Route("/v2/health/", "PathPrefix"), Route("/v2/repository/", "PathPrefix"), Route("/v2/models/stats"),
    Route("/v2/logging"), Route("/v2/trace/setting"), Route("/v2/systemsharedmemory/", "PathPrefix"),
    Route("/v2/cudasharedmemory/", "PathPrefix"), Route("/metrics"),
    Route("/inference.GRPCInferenceService/RepositoryModelLoad", protocol="grpc"),
    Route("/inference.GRPCInferenceService/RepositoryModelUnload", protocol="grpc"),
    Route("/inference.GRPCInferenceService/ServerLive", protocol="grpc"),
    Route("/inference.GRPCInferenceService/ServerReady", protocol="grpc"),
)

PRESETS: dict[str, RuntimePreset] = {
    p.name: p
    for p in (
        RuntimePreset(
            name="vllm",
            image="vllm/vllm-openai:v0.19.0",
            command=["python3", "-m", "vllm.entrypoints.openai.api_server"],
            args=vllm_args,
            port=8000,
            grpc_port=None,
            health_path="/health",
            readiness_path="/health",
            metrics_path="/metrics",
            protocol="http",
            routes=_OPENAI,
            picker_signals=frozenset({"queue", "kv", "lora", "prefix"}),
            env={"VLLM_ALLOW_RUNTIME_LORA_UPDATING": "true"},
            supports_lora=True,
            api="openai",
            internal=_VLLM_INTERNAL,
            invocations_path="/v1/chat/completions",
        ),
        RuntimePreset(
            name="caikit-tgis",
            image="quay.io/opendatahub/caikit-tgis-serving:stable-4d0134e",
            command=None,
            args=extra_only,
            port=8080,
            grpc_port=8085,
            health_path="/health",
            readiness_path="/health",
            metrics_path=None,
            protocol="http",
            routes=_CAIKIT_TGIS,
            picker_signals=frozenset(),
            env={"RUNTIME_LOCAL_MODELS_DIR": MODELS_DIR},
            api="caikit",
            internal=(Route("/health"),),
            invocations_path="/api/v1/task/text-generation",
            multi_model=True,
        ),
        RuntimePreset(
            name="caikit-standalone",
            image="quay.io/opendatahub/caikit-nlp:stable",
            command=["python", "-m", "caikit.runtime"],
            args=extra_only,
            port=8080,
            grpc_port=8085,
            health_path="/health",
            readiness_path="/health",
            metrics_path=None,
            protocol="http",
            routes=_CAIKIT_STANDALONE,
            picker_signals=frozenset(),
            env={"RUNTIME_LOCAL_MODELS_DIR": MODELS_DIR, "RUNTIME_HTTP_ENABLED": "true"},
            api="caikit",
            internal=(Route("/health"),),
            invocations_path="/api/v1/task/embedding",
            multi_model=True,
        ),
        RuntimePreset(
            name="tgis",
            image="quay.io/opendatahub/text-generation-inference:stable-bafd218",
            command=["text-generation-launcher"],
            args=tgis_args,
            port=3000,
            grpc_port=8033,
            health_path="/health",
            readiness_path="/health",
            metrics_path="/metrics",
            protocol="grpc",
            routes=_TGIS_GRPC,
            picker_signals=frozenset(),
            api="tgis-grpc",
            internal=(Route("/health"), Route("/metrics")),
        ),
        RuntimePreset(
            name="openvino",
            image="openvino/model_server:2024.4",
            command=["/ovms/bin/ovms"],
            args=openvino_args,
            port=8888,
            grpc_port=8001,
            health_path="/v2/health/live",
            readiness_path="/v2/health/ready",
            metrics_path="/metrics",
            protocol="http",
            routes=_KSERVE_V2_REST + _KSERVE_V2_GRPC,
            picker_signals=frozenset(),
            api="kserve-v2",
            internal=_KSERVE_V2_INTERNAL,
            invocations_path="/v2/models/{model}/infer",
            multi_model=True,
        ),
        RuntimePreset(
            name="triton",
            image="nvcr.io/nvidia/tritonserver:24.08-py3",
            command=["tritonserver"],
            args=triton_args,
            port=8000,
            grpc_port=8001,
            health_path="/v2/health/live",
            readiness_path="/v2/health/ready",
            metrics_path="/metrics",
            protocol="http",
            routes=_KSERVE_V2_REST + _KSERVE_V2_GRPC,
            picker_signals=frozenset(),
            api="kserve-v2",
            internal=_KSERVE_V2_INTERNAL,
            invocations_path="/v2/models/{model}/infer",
            multi_model=True,
        ),
    )
}


def resolve_preset(server: ServerSpec) -> RuntimePreset:
    """The server's runtime preset with its ``runtime_overrides`` applied."""
    preset = PRESETS[server.runtime]
    ov = server.runtime_overrides
    changes: dict = {}
    for f in ("image", "command", "args", "port", "grpc_port", "health_path", "readiness_path", "metrics_path", "protocol"):
        value = getattr(ov, f)
        if value is not None:
            changes[f] = list(value) if isinstance(value, list) else value
    if ov.routes is not None:
        changes["routes"] = tuple(Route(r.path, r.match, r.protocol) for r in ov.routes)
    if ov.picker_signals is not None:
        changes["picker_signals"] = frozenset(ov.picker_signals)
    if ov.env is not None:
        changes["env"] = {**preset.env, **ov.env}
    resolved = dataclasses.replace(preset, **changes)
    if resolved.protocol == "grpc" and resolved.grpc_port is None:
        raise ValueError(f"runtime {resolved.name!r}: protocol grpc needs a grpc_port")
    return resolved
