"""Exceptions raised by the picker.

Exception tree::

    PickerError                      base class; never raised directly
    ├── ConfigError                  invalid config file / flags (startup fails)
    └── RequestError                 a request is answered with an ImmediateResponse
        ├── BadRequest               400  unparseable body, missing model
        ├── Unauthorized             401  missing or unknown API key
        ├── ModelNotFound            404  model not served by this pool
        ├── TooManyRequests          429  shed (rejected-saturated) or rate limited
        └── NoEndpoints              503  nothing eligible (rejected-no-endpoints)

`RequestError` carries the HTTP status, the `x-llm-d-request-dropped-reason` value and optional
extra response headers (e.g. `retry-after`).
"""

from __future__ import annotations


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


class TooManyRequests(RequestError):
    status = 429
    reason = "rejected-saturated"


class NoEndpoints(RequestError):
    status = 503
    reason = "rejected-no-endpoints"
