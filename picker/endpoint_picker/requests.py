"""Request body parsers: find the model and the prompt text, parsing the body exactly once.

Supported: OpenAI completions / chat completions / embeddings / responses, Caikit
(`{model_id, inputs}` on /api/v1/task/...), KServe v2 (/v2/models/<name>/infer, model in the
path), gRPC (TGIS `model_id` and KServe v2 `model_name` read from the message, Caikit's
`mm-model-id` header; grpc_body.py). Unknown JSON APIs fall back to a top-level `model` key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from . import grpc_body
from .errors import BadRequest, RouteNotFound


@dataclass(slots=True)
class ParsedRequest:
    api: str
    model: str | None
    # Text used for prefix affinity and token estimates (UTF-8 bytes, built once).
    prompt: bytes
    # Parsed JSON body (None for bodyless / opaque bodies); mutated in place by a rewrite.
    body: dict[str, Any] | None
    # Key holding the model in `body` ("model" or "model_id"); None when the model is elsewhere.
    model_key: str | None
    stream: bool = False


def _text(value: Any, out: list[str]) -> None:
    """Flatten strings out of prompts / messages / content parts in document order."""
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, list):
        for v in value:
            _text(v, out)
    elif isinstance(value, dict):
        role = value.get("role")
        if isinstance(role, str):
            out.append(role)
            out.append(":")
        for k in ("content", "text", "input", "inputs", "prompt", "instructions"):
            if k in value:
                _text(value[k], out)


def _prompt(body: dict[str, Any], keys: tuple[str, ...]) -> bytes:
    parts: list[str] = []
    for k in keys:
        if k in body:
            _text(body[k], parts)
    return "\n".join(parts).encode("utf-8", "surrogatepass") if parts else b""


def api_for_path(path: str) -> str:
    p = path.split("?", 1)[0]
    if p.endswith("/chat/completions"):
        return "chat"
    if p.endswith("/completions"):
        return "completions"
    if p.endswith("/embeddings"):
        return "embeddings"
    if p.endswith("/responses"):
        return "responses"
    if p.startswith("/api/v1/task/"):
        return "caikit"
    if p.startswith("/v2/models/"):
        return "kserve"
    return "generic"


def kserve_model(path: str) -> str:
    """The model a KServe v2 client API path names: ``/v2/models/<m>[/versions/<v>]`` followed by
    nothing (metadata), ``/ready`` or ``/infer``. Any other path under ``/v2/models/`` (Triton's
    per-version ``/stats``, ``/trace``...) is a server endpoint, not a client API: RouteNotFound,
    even where a route's prefix match let it through."""
    parts = path.split("?", 1)[0].split("/")
    model = parts[3] if len(parts) > 3 else ""
    rest = parts[4:]
    if rest[:1] == ["versions"]:
        rest = rest[2:] if len(rest) > 1 and rest[1] else ["<missing version>"]
    if not model or rest not in ([], ["ready"], ["infer"]):
        raise RouteNotFound(f"{path.split('?', 1)[0]} is not a KServe v2 client API path (model metadata, /ready or /infer)")
    return model


def kserve_path_for(path: str, model: str) -> str:
    """The same KServe v2 path (version, verb and query kept) naming another model."""
    base, sep, query = path.partition("?")
    parts = base.split("/")
    parts[3] = model
    return "/".join(parts) + sep + query


_PROMPT_KEYS = {
    "chat": ("messages",),
    "completions": ("prompt",),
    "embeddings": ("input",),
    "responses": ("instructions", "input"),
    "caikit": ("inputs",),
    "kserve": ("inputs",),
    "generic": ("messages", "prompt", "input", "inputs"),
}


def _grpc_request(path: str, headers: dict[str, str], body: bytes) -> ParsedRequest:
    """gRPC: the model from the API's own place (grpc_body.py); `model_key` says where
    (`mm-model-id` header or `field:1` of the message) for a rewrite."""
    if body and grpc_body.model_in_body(path):
        try:
            model = grpc_body.read_model(body)
        except grpc_body.WireError as e:
            raise BadRequest(f"request is not a well-formed gRPC message: {e}") from None
        if model is not None:
            return ParsedRequest("grpc", model, b"", None, "field:1")
    model = headers.get(grpc_body.MODEL_HEADER) or None
    return ParsedRequest("grpc", model, b"", None, grpc_body.MODEL_HEADER if model else None)


def parse_request(path: str, headers: dict[str, str], body: bytes, pool_api: str = "openai") -> ParsedRequest:
    """Parse once. Raises BadRequest for an unparseable JSON body. `pool_api` (the pool's
    model-server API) decides how a body on a path that names no API is read."""
    content_type = headers.get("content-type", "")
    if content_type.startswith("application/grpc"):
        return _grpc_request(path, headers, body)
    api = api_for_path(path)
    if api == "generic" and pool_api == "caikit":
        api = "caikit"
    if not body:
        model = kserve_model(path) if api == "kserve" else None  # RouteNotFound for a server endpoint
        return ParsedRequest(api, model, b"", None, None)
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise BadRequest(f"request body is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise BadRequest("request body must be a JSON object")
    prompt = _prompt(data, _PROMPT_KEYS[api])
    stream = data.get("stream") is True
    if api == "kserve":
        return ParsedRequest(api, kserve_model(path), prompt, data, None, stream)
    key = "model_id" if api == "caikit" else "model"
    model = data.get(key)
    if model is None and api == "generic" and "model_id" in data:
        key, model = "model_id", data["model_id"]
    if model is not None and not isinstance(model, str):
        raise BadRequest(f"'{key}' must be a string")
    return ParsedRequest(api, model or None, prompt, data, key, stream)
