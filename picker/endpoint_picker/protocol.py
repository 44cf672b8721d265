"""Envoy ext_proc message helpers: headers in, header/metadata mutations and body chunks out.

Names of the Endpoint Picker Protocol live here so the servicer reads like the protocol.
"""

from __future__ import annotations

from typing import Iterator

from envoy.config.core.v3 import base_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb
from envoy.type.v3 import http_status_pb2
from google.protobuf import struct_pb2

from .errors import error_body
from .grpc_body import grpc_status

DESTINATION_HEADER = "x-gateway-destination-endpoint"
SERVED_KEY = "x-gateway-destination-endpoint-served"
SUBSET_NAMESPACE = "envoy.lb.subset_hint"
SUBSET_KEY = "x-gateway-destination-endpoint-subset"
LB_NAMESPACE = "envoy.lb"
DROPPED_REASON_HEADER = "x-llm-d-request-dropped-reason"
OBJECTIVE_HEADERS = ("x-gateway-inference-objective", "x-llm-d-inference-objective")
MODEL_REWRITE_HEADER = "x-llm-d-model-name-rewrite"
DEPLOYED_MODEL_HEADER = "x-deployed-model-id"

_OVERWRITE = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD


def headers_to_dict(header_map: base_pb2.HeaderMap) -> dict[str, str]:
    # Envoy fills raw_value (bytes); older versions / test clients may use value.
    out = {}
    for h in header_map.headers:
        out[h.key] = h.raw_value.decode("utf-8", "replace") if h.raw_value else h.value
    return out


def _set(key: str, value: str) -> base_pb2.HeaderValueOption:
    return base_pb2.HeaderValueOption(
        header=base_pb2.HeaderValue(key=key, raw_value=value.encode()), append_action=_OVERWRITE
    )


def header_mutation(set_headers: dict[str, str], remove: list[str] | None = None) -> pb.HeaderMutation:
    return pb.HeaderMutation(set_headers=[_set(k, v) for k, v in set_headers.items()], remove_headers=remove or [])


# Hot-path messages are filled in place (`msg.a.b.c = x`): with upb, nested keyword constructors
# build and then copy every sub-message, several times slower for these small messages.


def _fill_headers(common: pb.CommonResponse, set_headers: dict[str, str]) -> None:
    add = common.header_mutation.set_headers.add
    for k, v in set_headers.items():
        o = add()
        o.header.key = k
        o.header.raw_value = v.encode()
        o.append_action = _OVERWRITE


def _fill_destination(resp: pb.ProcessingResponse, value: str) -> None:
    resp.dynamic_metadata.fields[LB_NAMESPACE].struct_value.fields[DESTINATION_HEADER].string_value = value


def destination_metadata(value: str) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.fields[LB_NAMESPACE].struct_value.fields[DESTINATION_HEADER].string_value = value
    return s


def _routing_headers(endpoints: str, content_length: int | None, identity: bool, path: str | None,
                     extra: dict[str, str] | None = None) -> dict[str, str]:
    hdrs = {DESTINATION_HEADER: endpoints}
    if path is not None:
        hdrs[":path"] = path  # a model named in the path (KServe v2) was rewritten
    if extra:
        hdrs.update(extra)  # a model named in a header (Caikit gRPC's mm-model-id) was rewritten
    if content_length is not None:
        hdrs["content-length"] = str(content_length)
    if identity:
        # The response's model name will be restored, which needs an uncompressed body (response
        # headers, and so content-encoding, are not sent to the picker by default).
        hdrs["accept-encoding"] = "identity"
    return hdrs


def routing_headers_response(endpoints: str, content_length: int | None, identity: bool = False,
                             path: str | None = None, headers: dict[str, str] | None = None) -> pb.ProcessingResponse:
    """The deferred request_headers answer: destination header + metadata, route cache cleared.
    identity: also ask the model server for an uncompressed response (model-name restore);
    path: a new :path (rewritten KServe v2 model)."""
    resp = pb.ProcessingResponse()
    common = resp.request_headers.response
    _fill_headers(common, _routing_headers(endpoints, content_length, identity, path, headers))
    common.clear_route_cache = True
    _fill_destination(resp, endpoints)
    return resp


def buffered_body_response(endpoints: str, body: bytes | None, content_length: int | None,
                           identity: bool = False, path: str | None = None,
                           headers: dict[str, str] | None = None) -> pb.ProcessingResponse:
    """BUFFERED mode: headers were already continued, so routing rides on the body response."""
    resp = pb.ProcessingResponse()
    common = resp.request_body.response
    _fill_headers(common, _routing_headers(endpoints, content_length, identity, path, headers))
    common.clear_route_cache = True
    if body is not None:
        common.body_mutation.body = body
    _fill_destination(resp, endpoints)
    return resp


def _streamed(body: bytes, end_of_stream: bool, request: bool) -> pb.ProcessingResponse:
    resp = pb.ProcessingResponse()
    br = resp.request_body if request else resp.response_body
    sr = br.response.body_mutation.streamed_response
    sr.body = body
    if end_of_stream:
        sr.end_of_stream = True
    return resp


# Empty chunks are common (Envoy often ends a body with an empty end_of_stream message).
_EMPTY = {(eos, req): _streamed(b"", eos, req) for eos in (False, True) for req in (False, True)}


def streamed_chunks(body: bytes, chunk_size: int, *, request: bool, end_of_stream: bool = True) -> list[pb.ProcessingResponse]:
    """Body echoed as StreamedBodyResponse messages of at most chunk_size bytes; the last one
    carries end_of_stream. An empty body still yields one (empty) message."""
    n = len(body)
    if n == 0:
        return [_EMPTY[(end_of_stream, request)]]
    if n <= chunk_size:
        return [_streamed(body, end_of_stream, request)]
    return list(_chunks(body, chunk_size, request, end_of_stream))


def _chunks(body: bytes, chunk_size: int, request: bool, end_of_stream: bool) -> Iterator[pb.ProcessingResponse]:
    mv = memoryview(body)
    n = len(body)
    for start in range(0, n, chunk_size):
        end = start + chunk_size
        yield _streamed(bytes(mv[start:end]), end >= n and end_of_stream, request)


# gzip, zstd, zlib-wrapped deflate (the common 0x78 0x9c / 0x78 0x01 / 0x78 0xda headers).
_COMPRESSED_MAGIC = (b"\x1f\x8b", b"\x28\xb5\x2f\xfd", b"\x78\x9c", b"\x78\x01", b"\x78\xda")


def looks_compressed(first_chunk: bytes) -> bool:
    """A response body that starts like a compressed stream (used when its headers were not seen).
    JSON and SSE bodies start with `{`, `[`, whitespace, `data:`, `event:`, `id:` or `:`."""
    return first_chunk.startswith(_COMPRESSED_MAGIC)


def immediate_response(status: int, reason: str, message: str, extra_headers: dict[str, str] | None = None,
                       grpc: bool = False) -> pb.ProcessingResponse:
    """A rejection in the gateway's one error shape (errors.error_body, ``code`` = ``reason``).
    grpc: the client speaks gRPC, so the answer carries the matching gRPC status (Envoy sends a
    trailers-only response: grpc-status, and the error body as grpc-message)."""
    hdrs = {DROPPED_REASON_HEADER: reason}
    if not grpc:
        hdrs["content-type"] = "application/json"
    if extra_headers:
        hdrs.update(extra_headers)
    body = error_body(status, reason, message)
    immediate = pb.ImmediateResponse(status=http_status_pb2.HttpStatus(code=status), headers=header_mutation(hdrs),
                                     body=body, details=reason)
    if grpc:
        immediate.grpc_status.status = grpc_status(status)
    return pb.ProcessingResponse(immediate_response=immediate)


def metadata_string_list(md: base_pb2.Metadata, namespace: str, key: str) -> list[str] | None:
    """A list-or-comma-string value from request metadata_context; None when absent."""
    ns = md.filter_metadata.get(namespace) if md.filter_metadata else None
    if ns is None or key not in ns.fields:
        return None
    v = ns.fields[key]
    kind = v.WhichOneof("kind")
    if kind == "list_value":
        return [x.string_value.strip() for x in v.list_value.values if x.string_value.strip()]
    if kind == "string_value":
        return [x.strip() for x in v.string_value.split(",") if x.strip()]
    return []


HOLD_MARGIN_S = 2.0
"""A held request's message timeout is its queue TTL plus this: the picker's own answer (the
decision, or its refusal when the TTL runs out) always comes before the gateway gives up."""


def hold_response(seconds: float) -> pb.ProcessingResponse:
    """Tells Envoy that the answer to the current message comes later: a ProcessingResponse with
    only `override_message_timeout`, which restarts the message timer with this duration. Envoy
    honours it up to the filter's `max_message_timeout` (0, the default, disables overrides, and
    the message timeout applies as configured)."""
    resp = pb.ProcessingResponse()
    resp.override_message_timeout.FromMilliseconds(int(seconds * 1000))
    return resp


EMPTY_REQUEST_HEADERS = pb.ProcessingResponse(request_headers=pb.HeadersResponse())
EMPTY_RESPONSE_HEADERS = pb.ProcessingResponse(response_headers=pb.HeadersResponse())
EMPTY_RESPONSE_BODY = pb.ProcessingResponse(response_body=pb.BodyResponse())
EMPTY_REQUEST_TRAILERS = pb.ProcessingResponse(request_trailers=pb.TrailersResponse())
EMPTY_RESPONSE_TRAILERS = pb.ProcessingResponse(response_trailers=pb.TrailersResponse())


def response_headers_without_length() -> pb.ProcessingResponse:
    # The restored model name may change the body length.
    return pb.ProcessingResponse(
        response_headers=pb.HeadersResponse(response=pb.CommonResponse(header_mutation=pb.HeaderMutation(remove_headers=["content-length"])))
    )
