"""The model-server APIs the simulator speaks besides vLLM's OpenAI API (seed 003's runtimes).

One `RuntimeApi` per runtime, all on the same engine model (engine_jobs.py):

| runtime | REST (port `--port`) | gRPC (port `--grpc-port`) |
|---|---|---|
| caikit-tgis | /api/v1/task/text-generation, server-streaming-text-generation, /info/*, /health | caikit.runtime.Nlp.NlpService (text generation), caikit.runtime.info.InfoService |
| caikit-standalone | /api/v1/task/{embedding,sentence-similarity,rerank}[-tasks], /info/*, /health | NlpService (embedding tasks), InfoService |
| tgis | /health, /metrics | fmaas.GenerationService |
| openvino, triton | KServe v2 (/v2, /v2/health/*, /v2/models/<m>[/versions/<v>][/ready\\|/infer]), /metrics | inference.GRPCInferenceService |

`vllm` has no entry: the replica's own OpenAI routes serve it.
"""

from __future__ import annotations

RUNTIMES = ("vllm", "caikit-tgis", "caikit-standalone", "tgis", "openvino", "triton")


def api_for(replica):
    """The RuntimeApi for the replica's `--runtime`, or None for vLLM's OpenAI API."""
    runtime = replica.cfg.runtime
    if runtime == "vllm":
        return None
    if runtime in ("caikit-tgis", "caikit-standalone"):
        from .caikit_rest import CaikitApi

        return CaikitApi(replica, runtime)
    if runtime == "tgis":
        from .tgis import TgisApi

        return TgisApi(replica)
    if runtime in ("openvino", "triton"):
        from .kserve_v2 import KServeApi

        return KServeApi(replica, runtime)
    raise ValueError(f"unknown runtime {runtime!r}; known: {', '.join(RUNTIMES)}")
