"""The ext_proc servicer: Envoy messages in, routing decisions and body chunks out.

FULL_DUPLEX_STREAMED request bodies: buffer chunks until end_of_stream, decide once, then send
the deferred request_headers response followed by the body as streamed_response chunks.
BUFFERED: headers are continued at once and the decision rides on the single body response.
"""

from __future__ import annotations

import logging

from envoy.service.ext_proc.v3 import external_processor_pb2 as pb
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as pb_grpc

from . import protocol as P
from .config import ExtProcConfig
from .director import Director, Routed
from .errors import BadRequest, RequestError
from .restore import ModelRestorer

log = logging.getLogger(__name__)


class ExternalProcessor(pb_grpc.ExternalProcessorServicer):
    def __init__(self, director: Director, cfg: ExtProcConfig) -> None:
        self.director = director
        self.cfg = cfg
        self.full_duplex = cfg.request_body_mode == "FULL_DUPLEX_STREAMED"
        self.response_duplex = cfg.response_body_mode == "FULL_DUPLEX_STREAMED"
        self.active_streams = 0

    def _reject(self, e: RequestError) -> pb.ProcessingResponse:
        self.director.metrics.rejected(e.status, e.reason)
        return P.immediate_response(e.status, e.reason, e.message, e.headers)

    async def Process(self, request_iterator, context):  # noqa: N802 (gRPC method name)
        try:
            async for msg in self._process(request_iterator):
                yield msg
        except Exception:  # a bug must cost one request a 500, not the gateway a broken stream
            log.exception("ext_proc stream failed")
            self.director.metrics.rejected(500, "internal-error")
            yield P.immediate_response(500, "internal-error", "endpoint picker error")

    async def _process(self, request_iterator):
        director = self.director
        chunk = self.cfg.chunk_size
        max_body = self.cfg.max_body_bytes
        headers: dict[str, str] = {}
        path = ""
        subset: list[str] | None = None
        parts: list[bytes] = []
        size = 0
        decided = False
        routed: Routed | None = None
        restorer: ModelRestorer | None = None
        first_response_bytes = True
        self.active_streams += 1
        try:
            async for req in request_iterator:
                kind = req.WhichOneof("request")
                if kind == "request_body":
                    b = req.request_body
                    if b.body:
                        size += len(b.body)
                        if size > max_body:
                            yield self._reject(BadRequest("request body too large", reason="body-too-large"))
                            return
                        parts.append(b.body)
                    if not b.end_of_stream:
                        continue
                    body = parts[0] if len(parts) == 1 else b"".join(parts)
                    parts = []
                    try:
                        routed = director.route(path, headers, body, subset)
                    except RequestError as e:
                        yield self._reject(e)
                        return
                    decided = True
                    out = routed.body
                    if self.full_duplex:
                        yield P.routing_headers_response(routed.header_value, len(out))
                        for msg in P.streamed_chunks(out, chunk, request=True):
                            yield msg
                    else:
                        yield P.buffered_body_response(routed.header_value, out if out is not body else None, len(out))
                    if routed.rewritten and routed.target_model and routed.client_model:
                        restorer = ModelRestorer(routed.target_model, routed.client_model)
                elif kind == "request_headers":
                    h = req.request_headers
                    headers = P.headers_to_dict(h.headers)
                    path = headers.get(":path", "")
                    subset = P.metadata_string_list(req.metadata_context, P.SUBSET_NAMESPACE, P.SUBSET_KEY)
                    if h.end_of_stream:  # bodyless request: decide now
                        try:
                            routed = director.route(path, headers, b"", subset)
                        except RequestError as e:
                            yield self._reject(e)
                            return
                        decided = True
                        yield P.routing_headers_response(routed.header_value, None)
                    elif not self.full_duplex:
                        yield P.EMPTY_REQUEST_HEADERS
                elif kind == "response_headers":
                    if routed is not None:
                        served = P.metadata_string_list(req.metadata_context, P.LB_NAMESPACE, P.SERVED_KEY)
                        if served:
                            director.moved_to(routed, served[0])
                        if req.response_headers.end_of_stream:
                            director.release_tokens(routed)
                    yield P.response_headers_without_length() if restorer is not None else P.EMPTY_RESPONSE_HEADERS
                elif kind == "response_body":
                    b = req.response_body
                    if first_response_bytes and routed is not None:
                        first_response_bytes = False
                        director.release_tokens(routed)
                    if self.response_duplex:
                        data = restorer.feed(b.body, b.end_of_stream) if restorer is not None else b.body
                        for msg in P.streamed_chunks(data, chunk, request=False, end_of_stream=b.end_of_stream):
                            yield msg
                    elif restorer is not None:
                        yield pb.ProcessingResponse(response_body=pb.BodyResponse(response=pb.CommonResponse(
                            body_mutation=pb.BodyMutation(body=restorer.flush_each(b.body)))))
                    else:
                        yield P.EMPTY_RESPONSE_BODY
                elif kind == "request_trailers":
                    if not decided:
                        # Trailers end the body when it never carried end_of_stream.
                        body = b"".join(parts)
                        parts = []
                        try:
                            routed = director.route(path, headers, body, subset)
                        except RequestError as e:
                            yield self._reject(e)
                            return
                        decided = True
                        if self.full_duplex:
                            yield P.routing_headers_response(routed.header_value, len(routed.body))
                            for msg in P.streamed_chunks(routed.body, chunk, request=True, end_of_stream=False):
                                yield msg
                    yield P.EMPTY_REQUEST_TRAILERS
                elif kind == "response_trailers":
                    yield P.EMPTY_RESPONSE_TRAILERS
        finally:
            self.active_streams -= 1
            if routed is not None:
                director.release_request(routed)
