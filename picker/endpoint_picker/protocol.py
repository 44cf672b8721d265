"""Envoy ext_proc message helpers: headers in, header/metadata mutations and body chunks out.

Names of the Endpoint Picker Protocol live here so the servicer reads like the protocol.
"""

from __future__ import annotations

from typing import Iterator

import orjson
from envoy.config.core.v3 import base_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb
from envoy.type.v3 import http_status_pb2
from google.protobuf import struct_pb2

DESTINATION_HEADER = "x-gateway-destination-endpoint"
SERVED_KEY = "x-gateway-destination-endpoint-served"
SUBSET_NAMESPACE = "envoy.lb.subset_hint"
SUBSET_KEY = "x-gateway-destination-endpoint-subset"
LB_NAMESPACE = "envoy.lb"
DROPPED_REASON_HEADER = "x-llm-d-request-dropped-reason"
OBJECTIVE_HEADERS = ("x-gateway-inference-objective", "x-llm-d-inference-objective")
MODEL_REWRITE_HEADER = "x-llm-d-model-name-rewrite"

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


def destination_metadata(value: str) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.fields[LB_NAMESPACE].struct_value.fields[DESTINATION_HEADER].string_value = value
    return s


def routing_headers_response(endpoints: str, content_length: int | None) -> pb.ProcessingResponse:
    """The deferred request_headers answer: destination header + metadata, route cache cleared."""
    hdrs = {DESTINATION_HEADER: endpoints}
    if content_length is not None:
        hdrs["content-length"] = str(content_length)
    return pb.ProcessingResponse(
        request_headers=pb.HeadersResponse(
            response=pb.CommonResponse(header_mutation=header_mutation(hdrs), clear_route_cache=True)
        ),
        dynamic_metadata=destination_metadata(endpoints),
    )


def buffered_body_response(endpoints: str, body: bytes | None, content_length: int | None) -> pb.ProcessingResponse:
    """BUFFERED mode: headers were already continued, so routing rides on the body response."""
    hdrs = {DESTINATION_HEADER: endpoints}
    if content_length is not None:
        hdrs["content-length"] = str(content_length)
    common = pb.CommonResponse(header_mutation=header_mutation(hdrs), clear_route_cache=True)
    if body is not None:
        common.body_mutation.body = body
    return pb.ProcessingResponse(request_body=pb.BodyResponse(response=common), dynamic_metadata=destination_metadata(endpoints))


def _streamed(body: bytes, end_of_stream: bool, request: bool) -> pb.ProcessingResponse:
    br = pb.BodyResponse(response=pb.CommonResponse(body_mutation=pb.BodyMutation(
        streamed_response=pb.StreamedBodyResponse(body=body, end_of_stream=end_of_stream))))
    return pb.ProcessingResponse(request_body=br) if request else pb.ProcessingResponse(response_body=br)


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


def immediate_response(status: int, reason: str, message: str, extra_headers: dict[str, str] | None = None) -> pb.ProcessingResponse:
    hdrs = {DROPPED_REASON_HEADER: reason, "content-type": "application/json"}
    if extra_headers:
        hdrs.update(extra_headers)
    body = orjson.dumps({"error": {"code": status, "reason": reason, "message": message}})
    return pb.ProcessingResponse(
        immediate_response=pb.ImmediateResponse(
            status=http_status_pb2.HttpStatus(code=status), headers=header_mutation(hdrs), body=body, details=reason
        )
    )


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
