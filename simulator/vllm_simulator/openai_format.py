"""What every OpenAI-API answer of a replica is written with, as vLLM writes it.

`dumps` encodes JSON bodies (orjson); `error_body` is OpenAI's error object as vLLM fills it;
`random_id` is the random part of response ids; `FAILURE_TYPES` are the errors fault injection
(`--failure-rate`, `/sim/control`) answers with.
"""

from __future__ import annotations

import uuid

import orjson

FAILURE_TYPES = {
    # name: (status, type, message)
    "internal_error": (500, "InternalServerError", "Internal server error (injected failure)"),
    "server_error": (503, "ServiceUnavailableError", "The server is currently overloaded (injected failure)"),
    "rate_limit": (429, "RateLimitError", "Rate limit reached (injected failure)"),
}
dumps = orjson.dumps


def error_body(message: str, type_: str, code: int, param: str | None = None) -> bytes:
    return dumps({"error": {"message": message, "type": type_, "param": param, "code": code}})


def random_id() -> str:
    return uuid.uuid4().hex
