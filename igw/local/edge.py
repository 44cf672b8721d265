"""What the local gateway does to a request before routing it, as GKE's regional load balancer does:
path normalisation, the client address in X-Forwarded-For, HTTP/1.0, and JSON error replies.

* Paths: RFC 3986 dot segments removed (``normalize_path``; ``%2e`` is decoded first), repeated
  slashes merged, escaped slashes (``%2F``, ``%5C``) answered with a redirect to the unescaped
  path, all before route matching, so ``/invoke/../v1/models`` is matched as ``/v1/models`` and
  nothing leaves the invoke prefix.
* X-Forwarded-For: Envoy appends the peer (``use_remote_address``) and then its own address, so
  the picker sees ``<client-sent>,<client-ip>,<gateway-ip>`` exactly as behind GKE's load
  balancer and the rendered ``auth.client_address_hop: 2`` holds locally too.
* HTTP/1.0 is accepted (a Host-less request gets ``default_host_for_http_10``).
* Envoy's own replies (no route, oversized body, upstream failure, timeout, malformed requests)
  carry the gateway's one error shape, the OpenAI error object with a stable ``code``
  (endpoint_picker.errors), instead of plain text or nothing. The picker's rejections are local
  replies too; their response details are their kebab-case code, so no mapper touches them (they
  are JSON already). A picker that fails a FailClose pool gets `picker_failure_reply` (below).

On GKE the load balancer produces these replies itself and Gateway API cannot change their
bodies; see README.md ("Errors").
"""

from __future__ import annotations

from typing import Any

from endpoint_picker.errors import error_type

_HM_CONFIG = "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation"
HTTP10_DEFAULT_HOST = "gateway"

# (code, status, message, filter): Envoy-generated replies -> the gateway's error codes, first
# match wins. Response flags: NR no route, UH no healthy upstream, UF/UC/UR/URX/LR connection
# failure or reset, UO overflow, UT upstream timeout, DPE downstream protocol error.
_CEL = "envoy.access_loggers.extension_filters.cel"
_CEL_TYPE = "type.googleapis.com/envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter"
_PICKER_CODE = "response.code_details.matches('^[a-z0-9]+(-[a-z0-9]+)*$')"
"""The picker's rejections carry their kebab-case code as response details (Envoy's own details
are snake_case): they are JSON already, so the catch-all mappers below leave them alone."""


def _flags(*flags: str) -> dict[str, Any]:
    return {"response_flag_filter": {"flags": list(flags)}}


def _status(code: int) -> dict[str, Any]:
    return {"status_code_filter": {"comparison": {"op": "EQ", "value": {"default_value": code, "runtime_key": f"igw.lr.{code}"}}}}


def _cel(expression: str) -> dict[str, Any]:
    return {"extension_filter": {"name": _CEL, "typed_config": {"@type": _CEL_TYPE, "expression": expression}}}


_DETAILS = " (%RESPONSE_CODE_DETAILS%)"
LOCAL_REPLIES: tuple[tuple[str, int | None, str, dict[str, Any]], ...] = (
    ("route-not-found", 404, "no route for this path: the gateway exposes only the model servers' client API", _flags("NR")),
    ("upstream-timeout", 504, "the model server did not answer in time", _flags("UT")),
    ("no-healthy-upstream", 503, "no model server is ready to serve this request", _flags("UH")),
    ("upstream-overflow", 503, "the model servers are at their connection limit", _flags("UO")),
    ("upstream-reset", 503, "the model server closed the connection before answering" + _DETAILS, _flags("UF", "UC", "UR", "URX", "LR", "UMSDR")),
    ("body-too-large", 413, "the request body is larger than the gateway accepts", _status(413)),
    ("request-timeout", 408, "the request was not received in time", _status(408)),
    ("headers-too-large", 431, "the request headers are larger than the gateway accepts", _status(431)),
    ("http-version-not-supported", 426, "use HTTP/1.0, HTTP/1.1 or HTTP/2", _status(426)),
    ("bad-request", None, "the gateway cannot accept this request" + _DETAILS, _cel(f"response.code >= 400 && response.code < 500 && !{_PICKER_CODE}")),
    *(((name, code, message + _DETAILS, _cel(f"response.code == {code} && !{_PICKER_CODE}"))
       for name, code, message in (("gateway-error", 500, "the gateway failed to handle the request"),
                                   ("upstream-error", 502, "the model server's answer was not valid"),
                                   ("upstream-unavailable", 503, "no model server could take the request"),
                                   ("upstream-timeout", 504, "the model server did not answer in time")))),
)
"""Every other Envoy reply of 400 or more falls into the last mappers (status kept)."""


def _mapper(code: str, status: int | None, message: str, flt: dict[str, Any]) -> dict[str, Any]:
    body = {"error": {"message": message, "type": error_type(status or 400), "param": None, "code": code}}
    mapper: dict[str, Any] = {"filter": flt, "body_format_override": {"json_format": body, "content_type": "application/json"}}
    if status is not None:
        mapper["status_code"] = status
    return mapper


PICKER_UNAVAILABLE = "picker-unavailable"


def picker_failure_reply() -> dict[str, Any]:
    """local_reply_config mapper: ext_proc's own error replies (500 `ext_proc_error_gRPC_error_<n>`
    when the picker is unreachable, 504 `ext_proc_error_per-message_timeout_exceeded` when it does
    not answer in time; only FailClose pools produce them) become a 503 in the gateway's error shape."""
    return {
        "filter": {"extension_filter": {"name": "envoy.access_loggers.extension_filters.cel", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter",
            "expression": "response.code_details.startsWith('ext_proc_error')"}}},
        "status_code": 503,
        "headers_to_add": [{"header": {"key": "x-llm-d-request-dropped-reason", "value": PICKER_UNAVAILABLE},
                            "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"},
                           {"header": {"key": "retry-after", "value": "1"}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}],
        "body_format_override": {"content_type": "application/json", "json_format": {"error": {
            "message": "the endpoint picker is unavailable and this pool fails closed",
            "type": error_type(503), "param": None, "code": PICKER_UNAVAILABLE}}},
    }


def local_reply_config() -> dict[str, Any]:
    return {"mappers": [picker_failure_reply(), *(_mapper(*r) for r in LOCAL_REPLIES)]}


def hcm_options() -> dict[str, Any]:
    """HttpConnectionManager fields for the gateway's edge behaviour (merged into each listener)."""
    return {
        "normalize_path": True,
        "merge_slashes": True,
        "path_with_escaped_slashes_action": "UNESCAPE_AND_REDIRECT",
        "use_remote_address": True,
        "xff_num_trusted_hops": 0,
        "http_protocol_options": {"accept_http_10": True, "default_host_for_http_10": HTTP10_DEFAULT_HOST},
        "local_reply_config": local_reply_config(),
    }


def gateway_address_filter_config() -> dict[str, Any]:
    """The header_mutation filter's own config: append the gateway's address to X-Forwarded-For
    after the client's (GKE's load balancer appends `<client-ip>,<load-balancer-ip>`). Runs
    before the pickers, like every route's RequestHeaderModifier."""
    return {
        "@type": _HM_CONFIG,
        "mutations": {"request_mutations": [{"append": {
            "header": {"key": "x-forwarded-for", "value": "%DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%"},
            "append_action": "APPEND_IF_EXISTS_OR_ADD"}}]},
    }
