"""Model-server pods of seed 003's runtimes (Caikit, TGIS, OpenVINO, Triton), run by the simulator.

A non-vLLM model-server pod is annotated with its runtime and the models it loads
(`components/builders/model_server.py`: `inference-gateway.dev/runtime`, `.../models`). Its
container declares the runtime's HTTP port (named `http`: health, metrics, REST) and gRPC port
(`grpc`). Locally the pod is one `vllm-sim --runtime <runtime>` process on the pod's address
listening on both ports, serving every model of the annotation, with the runtime flags the
simulator honours passed through (TGIS `--max-new-tokens`, `--max-sequence-length`). The
container's own command and flags (caikit's config, Triton's repository, ...) mean nothing to
the simulator and are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from components.builders.model_server import MODELS_ANNOTATION, RUNTIME_ANNOTATION

PASSED_FLAGS = {"tgis": ("--max-new-tokens", "--max-sequence-length")}
"""Runtime flags the simulator understands, per runtime (`--flag=value` or `--flag value`)."""
EMBEDDING_DIM = {"caikit-standalone": 384}
"""Embedding size of the simulated models (sentence-transformers' MiniLM / BGE-small: 384)."""


@dataclass(frozen=True)
class RuntimePod:
    runtime: str
    models: tuple[str, ...]
    http_port: int
    grpc_port: int | None
    args: tuple[str, ...]
    """vllm-sim argv without --host, --port, --grpc-port, --pod-name, --time-scale."""

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.http_port,) + ((self.grpc_port,) if self.grpc_port is not None else ())


def named_port(container: dict[str, Any], name: str) -> int | None:
    return next((int(p["containerPort"]) for p in container.get("ports") or [] if p.get("name") == name), None)


def _passed(runtime: str, argv: list[str]) -> list[str]:
    out: list[str] = []
    for i, a in enumerate(argv):
        key, eq, val = a.partition("=")
        if key in PASSED_FLAGS.get(runtime, ()):
            out += [key, val] if eq else [key, argv[i + 1]] if i + 1 < len(argv) else []
    return out


def runtime_pod(pod_meta: dict[str, Any], container: dict[str, Any]) -> RuntimePod | None:
    """The simulator's view of a model-server pod, or None for vLLM pods (no runtime annotation)."""
    annotations = pod_meta.get("annotations") or {}
    runtime = annotations.get(RUNTIME_ANNOTATION)
    if not runtime or runtime == "vllm":
        return None
    if runtime == "external":  # an external model's egress proxy: a real Envoy (egress_pods.py)
        from .egress_pods import egress_pod

        return egress_pod(annotations, container)
    models = tuple(m for m in str(annotations.get(MODELS_ANNOTATION, "")).split(",") if m)
    if not models:
        raise ValueError(f"a {runtime} pod without models (annotation {MODELS_ANNOTATION})")
    http = named_port(container, "http")
    if http is None:
        raise ValueError(f"a {runtime} pod without a container port named 'http'")
    args = ["--runtime", runtime, "--model", models[0], "--served-model-name", *models,
            *_passed(runtime, [str(a) for a in container.get("args") or []])]
    if runtime in EMBEDDING_DIM:
        args += ["--embedding-dim", str(EMBEDDING_DIM[runtime])]
    return RuntimePod(runtime, models, http, named_port(container, "grpc"), tuple(args))
