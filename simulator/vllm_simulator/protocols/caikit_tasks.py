"""Caikit task semantics shared by the REST and gRPC front ends of both Caikit runtimes.

Which tasks a runtime serves (OpenShift AI, seed 003): Caikit+TGIS serves text generation
(unary and server-streaming) backed by TGIS; Caikit standalone serves caikit-nlp's embedding
module (embedding, sentence similarity, rerank, each also as a `-tasks` batch). Every model the
pod loaded (`--served-model-name`) serves its runtime's tasks.

Results are computed here as plain values; the front ends shape them as the runtime does
(REST JSON from caikit's `to_dict`, gRPC messages from the protos). Errors are `CaikitError`
with the HTTP status caikit's REST server answers and the gRPC status its servicer raises, and
caikit's messages ("Model 'x' not loaded", "Please provide model_id in payload", ...).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .. import tokenizer as tok
from ..text import embedding_vector

TEXT_GENERATION_TASKS = ("text-generation", "server-streaming-text-generation")
EMBEDDING_TASKS = ("embedding", "embedding-tasks", "sentence-similarity", "sentence-similarity-tasks",
                   "rerank", "rerank-tasks")
TASKS = {"caikit-tgis": TEXT_GENERATION_TASKS, "caikit-standalone": EMBEDDING_TASKS}
PRODUCERS = {"caikit-tgis": ("Text Generation", "0.1.0"), "caikit-standalone": ("EmbeddingModule", "0.0.1")}
MODULE_IDS = {"caikit-tgis": "6d1f6a3b-caikit-nlp-text-generation-tgis", "caikit-standalone": "eeb12558-b4fa-4f34-a9fd-3f5890e9cd3f"}
DEFAULT_MAX_NEW_TOKENS = 20
"""caikit-nlp's TGIS text generation default."""
TGIS_MAX_NEW_TOKENS = 1024
"""TGIS `--max-new-tokens` default, which caikit passes through as INVALID_ARGUMENT."""
RUNTIME_VERSION = "caikit-sim"
PYTHON_PACKAGES = {"caikit": "0.27.7", "caikit_nlp": "0.5.11"}


class CaikitError(Exception):
    """`http` is the status caikit's REST server answers; `grpc` the gRPC status name."""

    def __init__(self, http: int, grpc: str, message: str) -> None:
        super().__init__(message)
        self.http = http
        self.grpc = grpc
        self.message = message


def check_model(replica, model_id: str | None) -> str:
    if not model_id:
        raise CaikitError(400, "INVALID_ARGUMENT", "Please provide model_id in payload")
    if model_id not in replica.cfg.served_model_name:
        raise CaikitError(404, "NOT_FOUND", f"Model '{model_id}' not loaded")
    return model_id


def producer(runtime: str) -> dict[str, str]:
    name, version = PRODUCERS[runtime]
    return {"name": name, "version": version}


# -- text generation --------------------------------------------------------------------------------
@dataclass(frozen=True)
class GenerationParams:
    max_new_tokens: int
    preserve_input_text: bool = False


def generation_params(params: dict[str, Any]) -> GenerationParams:
    """Validate caikit's text generation parameters (the ones that change the result)."""
    mnt = params.get("max_new_tokens")
    if mnt is None or mnt == 0:
        mnt = DEFAULT_MAX_NEW_TOKENS
    if not isinstance(mnt, int) or isinstance(mnt, bool) or mnt < 0:
        raise CaikitError(400, "INVALID_ARGUMENT", f"max_new_tokens must be a non-negative integer, got {mnt!r}")
    if mnt > TGIS_MAX_NEW_TOKENS:
        raise CaikitError(400, "INVALID_ARGUMENT", f"max_new_tokens must be <= {TGIS_MAX_NEW_TOKENS}")
    mn = params.get("min_new_tokens") or 0
    if isinstance(mn, int) and mn > mnt:
        raise CaikitError(400, "INVALID_ARGUMENT", "min_new_tokens must be <= max_new_tokens")
    return GenerationParams(mnt, bool(params.get("preserve_input_text")))


def finish_reason(job) -> str:
    return "MAX_TOKENS" if job.finish == "length" else "EOS_TOKEN"


# -- embedding module -------------------------------------------------------------------------------
def input_tokens(*texts: str) -> int:
    return sum(tok.count_tokens(t.encode("utf-8")) for t in texts)


def embed(replica, text: str) -> list[float]:
    return list(embedding_vector(text.encode("utf-8"), replica.cfg.embedding_dim, replica.cfg.seed))


def _cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    na = math.sqrt(sum(x * x for x in a)) or 1.0
    nb = math.sqrt(sum(y * y for y in b)) or 1.0
    return dot / (na * nb)


def similarity(replica, source: str, sentences: list[str]) -> list[float]:
    s = embed(replica, source)
    return [_cosine(s, embed(replica, x)) for x in sentences]


def doc_text(doc: dict[str, Any]) -> str:
    """caikit-nlp compares the document's `text`, else `_text`, else ''."""
    t = doc.get("text", doc.get("_text", ""))
    return t if isinstance(t, str) else str(t)


def rerank(replica, query: str, documents: list[dict[str, Any]], top_n: int | None,
           return_documents: bool, return_query: bool, return_text: bool) -> dict[str, Any]:
    """One query's ranking as caikit's RerankScores: most relevant first, top_n of them."""
    scored = sorted(((s, i) for i, s in enumerate(similarity(replica, query, [doc_text(d) for d in documents]))),
                    key=lambda x: -x[0])
    if top_n is not None and top_n > 0:
        scored = scored[:top_n]
    scores = []
    for s, i in scored:
        entry: dict[str, Any] = {"document": documents[i] if return_documents else None, "index": i, "score": s,
                                 "text": doc_text(documents[i]) if return_text else None}
        scores.append(entry)
    return {"query": query if return_query else None, "scores": scores}


def check_strings(name: str, value: Any, many: bool) -> Any:
    """A `str` (or list of str) task input, else the 422 caikit's pydantic validation answers."""
    ok = isinstance(value, list) and all(isinstance(v, str) for v in value) if many else isinstance(value, str)
    if not ok:
        raise CaikitError(422, "INVALID_ARGUMENT",
                          f"{name}: Input should be a valid {'list of strings' if many else 'string'}")
    return value


def check_documents(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(d, dict) for d in value):
        raise CaikitError(422, "INVALID_ARGUMENT", "documents: Input should be a valid list of JSON objects")
    return value


def models_info(replica, runtime: str) -> list[dict[str, Any]]:
    """/info/models (caikit ModelInfo per loaded model)."""
    return [{"model_path": f"/mnt/models/{m}", "name": m, "size": 0, "metadata": {},
             "loaded": True, "module_id": MODULE_IDS[runtime], "module_metadata": {"name": PRODUCERS[runtime][0]}}
            for m in replica.cfg.served_model_name]


def runtime_info() -> dict[str, Any]:
    """/info/version (caikit RuntimeInfoResponse)."""
    return {"python_packages": dict(PYTHON_PACKAGES), "runtime_version": RUNTIME_VERSION}
