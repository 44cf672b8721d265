"""Exceptions raised by the picker.

Exception tree::

    PickerError                      base class; never raised directly
    ├── ConfigError                  invalid config file / flags (startup fails)
    └── RequestError                 a request is answered with an ImmediateResponse
        ├── BadRequest               400  unparseable body, missing model
        ├── Unauthorized             401  missing or unknown API key
        ├── ModelNotFound            404  model not served by this pool, unknown x-deployed-model-id
        ├── RouteNotFound            404  a path that is no client API (route-not-found, as the gateway's own 404)
        ├── TooManyRequests          429  shed (rejected-saturated, rejected-ttl-expired) or rate limited
        ├── NoEndpoints              503  nothing eligible (rejected-no-endpoints)
        ├── Overloaded               503  past an overload bound or a full queue (rejected-overloaded, -ttl-expired)
        └── ServiceUnavailable       503  the picker is stopping (rejected-shutting-down)

`RequestError` carries the HTTP status, the `x-llm-d-request-dropped-reason` value and optional
extra response headers (e.g. `retry-after`).

Every error a client receives from the gateway has one shape, compatible with the OpenAI error
object: ``{"error": {"message": str, "type": str, "param": null, "code": str}}``. ``code`` is a
stable kebab-case string (for the picker's rejections the same value as the
`x-llm-d-request-dropped-reason` header); ``type`` follows the HTTP status (``ERROR_TYPES``).
`error_body` builds it for the picker; the local Envoy's own replies use the same fields
(igw/local/envoy.py).
"""

from __future__ import annotations

import orjson

ERROR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 404: "not_found_error",
    408: "timeout_error", 413: "invalid_request_error", 426: "invalid_request_error", 429: "rate_limit_error",
    431: "invalid_request_error", 500: "server_error", 502: "service_unavailable_error",
    503: "service_unavailable_error", 504: "timeout_error",
}
"""OpenAI-style error ``type`` per HTTP status."""


def error_type(status: int) -> str:
    return ERROR_TYPES.get(status, "invalid_request_error" if status < 500 else "server_error")


def error_body(status: int, code: str, message: str) -> bytes:
    """The gateway's one error shape: the OpenAI error object with a stable string ``code``."""
    return orjson.dumps({"error": {"message": message, "type": error_type(status), "param": None, "code": code}})


class PickerError(Exception):
    """Base class of every picker exception."""


class ConfigError(PickerError, ValueError):
    """The configuration is invalid; the message names the offending config path."""


class RequestError(PickerError):
    status: int = 500
    reason: str = "internal-error"

    def __init__(self, message: str, *, reason: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason
        self.headers = headers or {}


class BadRequest(RequestError):
    status = 400
    reason = "bad-request"


class Unauthorized(RequestError):
    status = 401
    reason = "unauthorized"


class ModelNotFound(RequestError):
    status = 404
    reason = "model-not-found"


class RouteNotFound(RequestError):
    status = 404
    reason = "route-not-found"


class TooManyRequests(RequestError):
    status = 429
    reason = "rejected-saturated"


class NoEndpoints(RequestError):
    status = 503
    reason = "rejected-no-endpoints"


class ServiceUnavailable(RequestError):
    """503 for a request the picker cannot serve now for another reason (rejected-shutting-down)."""

    status = 503
    reason = "rejected-shutting-down"


class Overloaded(RequestError):
    """A request that is never shed arrives at a pool past its overload bound (admission.py)."""

    status = 503
    reason = "rejected-overloaded"
