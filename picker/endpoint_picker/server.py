"""The ext_proc servicer: Envoy messages in, routing decisions and body chunks out.

FULL_DUPLEX_STREAMED request bodies: buffer chunks until end_of_stream, decide once, then send
the deferred request_headers response followed by the body as streamed_response chunks.
BUFFERED: headers are continued at once and the decision rides on the single body response.

Response side: the generated Envoy config skips response headers when the response body is
streamed (one gRPC message less in and out per request; each costs ~0.1 ms of Python CPU), so the
first response message is either the headers or the first body chunk. Both carry the
`envoy.lb` metadata with the served endpoint; the servicer handles either mode.

`StreamState` is the per-stream protocol state machine (plain, synchronous, testable); the
servicer only pumps gRPC messages through it.

Held requests (flow control, flow_control.py): when the Director queues a request, the message
that completed it (body, bodyless headers or trailers) is answered with `hold_response` only (the
message timer restarts with the queue TTL plus a margin), and the real answer goes out later
through `emit`, which each transport provides: the stream stays open, nothing blocks the loop.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable

from envoy.service.ext_proc.v3 import external_processor_pb2 as pb
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as pb_grpc

from . import protocol as P
from .config import ExtProcConfig
from .director import Director, Routed
from .errors import BadRequest, RequestError
from .flow_control import Held
from .restore import ModelRestorer

log = logging.getLogger(__name__)


class StreamState:
    """One ext_proc stream (= one HTTP request). `handle` returns the responses to send; after
    an ImmediateResponse `done` is set and the stream should end."""

    __slots__ = ("d", "cfg", "full_duplex", "response_duplex", "headers", "path", "subset", "parts", "size",
                 "decided", "routed", "restorer", "response_started", "sniff", "first_response_bytes", "done",
                 "emit", "held", "hold_stage", "body_in", "trailers_pending")

    def __init__(self, director: Director, cfg: ExtProcConfig, full_duplex: bool, response_duplex: bool) -> None:
        self.d = director
        self.cfg = cfg
        self.full_duplex = full_duplex
        self.response_duplex = response_duplex
        self.headers: dict[str, str] = {}
        self.path = ""
        self.subset: list[str] | None = None
        self.parts: list[bytes] = []
        self.size = 0
        self.decided = False
        self.routed: Routed | None = None
        self.restorer: ModelRestorer | None = None
        self.response_started = False  # served endpoint read (from headers or the first body message)
        self.sniff = False  # restore pending without response headers: check the first bytes
        self.first_response_bytes = True
        self.done = False
        # Set by the transport: sends answers later (responses, end the stream). Without it
        # nothing is held (the Director decides at once).
        self.emit: Callable[[list[pb.ProcessingResponse], bool], None] | None = None
        self.held: Held | None = None
        self.hold_stage = ""           # the message a held request owes its answer to
        self.body_in = b""             # the request body as received (BUFFERED: echo only if changed)
        self.trailers_pending = False  # trailers arrived while the request was held

    def _reject(self, e: RequestError) -> list[pb.ProcessingResponse]:
        self.d.metrics.rejected(e.status, e.reason)
        self.done = True
        grpc = self.headers.get("content-type", "").startswith("application/grpc")
        return [P.immediate_response(e.status, e.reason, e.message, e.headers, grpc=grpc)]

    def _route(self, body: bytes, stage: str) -> list[pb.ProcessingResponse]:
        """Decide (or hold) the request completed by the `stage` message; raises RequestError."""
        if self.emit is None or self.d.flow is None:
            routed = self.d.route(self.path, self.headers, body, self.subset)
        else:
            routed, held = self.d.submit(self.path, self.headers, body, self.subset, self._deliver)
            if routed is None:
                self.held, self.hold_stage = held, stage
                return [P.hold_response(held.ttl + P.HOLD_MARGIN_S)]
        return self._answer(stage, routed)

    def _answer(self, stage: str, routed: Routed) -> list[pb.ProcessingResponse]:
        """The routing answer to the message that completed the request."""
        self.routed = routed
        self.decided = True
        if routed.rewritten and routed.target_model and routed.client_model and routed.api != "grpc":
            self.restorer = ModelRestorer(routed.target_model, routed.client_model)
        identity = self.restorer is not None
        out = routed.body
        if stage == "headers":
            return [P.routing_headers_response(routed.header_value, None, identity, routed.path, routed.headers)]
        if stage == "body":
            if self.full_duplex:
                return [P.routing_headers_response(routed.header_value, len(out), identity, routed.path, routed.headers),
                        *P.streamed_chunks(out, self.cfg.chunk_size, request=True)]
            return [P.buffered_body_response(routed.header_value, out if out is not self.body_in else None, len(out),
                                             identity, routed.path, routed.headers)]
        if not self.full_duplex:  # trailers
            return [P.EMPTY_REQUEST_TRAILERS]
        return [P.routing_headers_response(routed.header_value, len(out), identity, routed.path, routed.headers),
                *P.streamed_chunks(out, self.cfg.chunk_size, request=True, end_of_stream=False),
                P.EMPTY_REQUEST_TRAILERS]

    def _deliver(self, outcome: Routed | RequestError) -> None:
        """A held request left the queue: send the answer it owes (flow control calls this)."""
        self.held = None
        if isinstance(outcome, RequestError):
            out = self._reject(outcome)
        else:
            out = self._answer(self.hold_stage, outcome)
            if self.trailers_pending and self.hold_stage != "trailers":
                out.append(P.EMPTY_REQUEST_TRAILERS)
        assert self.emit is not None
        self.emit(out, self.done)

    def handle(self, req: pb.ProcessingRequest) -> list[pb.ProcessingResponse]:
        kind = req.WhichOneof("request")
        if kind == "request_body":
            return self._request_body(req.request_body)
        if kind == "response_body":
            return self._response_body(req)
        if kind == "request_headers":
            return self._request_headers(req)
        if kind == "response_headers":
            return self._response_headers(req)
        if kind == "request_trailers":
            return self._request_trailers()
        if kind == "response_trailers":
            return [P.EMPTY_RESPONSE_TRAILERS]
        return []

    def _request_headers(self, req: pb.ProcessingRequest) -> list[pb.ProcessingResponse]:
        h = req.request_headers
        self.headers = P.headers_to_dict(h.headers)
        self.path = self.headers.get(":path", "")
        self.subset = P.metadata_string_list(req.metadata_context, P.SUBSET_NAMESPACE, P.SUBSET_KEY)
        if h.end_of_stream:  # bodyless request: decide now
            try:
                return self._route(b"", "headers")
            except RequestError as e:
                return self._reject(e)
        return [] if self.full_duplex else [P.EMPTY_REQUEST_HEADERS]

    def _request_body(self, b: pb.HttpBody) -> list[pb.ProcessingResponse]:
        body = b.body  # each access of a bytes field builds a new object: read it once
        if body:
            self.size += len(body)
            if self.size > self.cfg.max_body_bytes:
                return self._reject(BadRequest("request body too large", reason="body-too-large"))
            self.parts.append(body)
        if not b.end_of_stream:
            return []
        parts = self.parts
        body = self.body_in = parts[0] if len(parts) == 1 else b"".join(parts)
        self.parts = []
        try:
            return self._route(body, "body")
        except RequestError as e:
            return self._reject(e)

    def _request_trailers(self) -> list[pb.ProcessingResponse]:
        if self.decided:
            return [P.EMPTY_REQUEST_TRAILERS]
        if self.held is not None:  # answered with the decision
            self.trailers_pending = True
            return []
        # Trailers end the body when it never carried end_of_stream.
        body = self.body_in = b"".join(self.parts)
        self.parts = []
        try:
            return self._route(body, "trailers")
        except RequestError as e:
            return self._reject(e)

    def _response_started(self, req: pb.ProcessingRequest, routed: Routed) -> None:
        """First response message (headers, or the first body chunk when headers are skipped)."""
        self.response_started = True
        served = P.metadata_string_list(req.metadata_context, P.LB_NAMESPACE, P.SERVED_KEY)
        if served:
            self.d.moved_to(routed, served[0])

    def _response_headers(self, req: pb.ProcessingRequest) -> list[pb.ProcessingResponse]:
        routed = self.routed
        if routed is not None:
            if not self.response_started:
                self._response_started(req, routed)
            if req.response_headers.end_of_stream:
                self.d.release_tokens(routed)
            if self.restorer is not None:
                encoding = P.headers_to_dict(req.response_headers.headers).get("content-encoding", "identity")
                if encoding.lower() != "identity":
                    self.restorer = None  # compressed body: the model name cannot be found in it
        return [P.response_headers_without_length() if self.restorer is not None else P.EMPTY_RESPONSE_HEADERS]

    def _response_body(self, req: pb.ProcessingRequest) -> list[pb.ProcessingResponse]:
        b = req.response_body
        if self.first_response_bytes:
            self.first_response_bytes = False
            routed = self.routed
            if routed is not None:
                if not self.response_started:  # response headers skipped
                    self._response_started(req, routed)
                    self.sniff = self.restorer is not None
                self.d.release_tokens(routed)  # prefill is over
        if self.sniff and b.body:
            self.sniff = False
            if P.looks_compressed(b.body):
                # Rewritten requests ask for identity; a server that compresses anyway (its
                # content-encoding unseen without the headers) is passed through untouched.
                self.restorer = None
        restorer = self.restorer
        if self.response_duplex:
            data = restorer.feed(b.body, b.end_of_stream) if restorer is not None else b.body
            return P.streamed_chunks(data, self.cfg.chunk_size, request=False, end_of_stream=b.end_of_stream)
        if restorer is not None:
            return [pb.ProcessingResponse(response_body=pb.BodyResponse(response=pb.CommonResponse(
                body_mutation=pb.BodyMutation(body=restorer.flush_each(b.body)))))]
        return [P.EMPTY_RESPONSE_BODY]

    def close(self) -> None:
        if self.held is not None:  # the client left while its request waited
            if self.d.flow is not None:
                self.d.flow.cancel(self.held)
            self.held = None
        if self.routed is not None:
            self.d.release_request(self.routed)
            self.routed = None


PROCESS_METHOD = "/envoy.service.ext_proc.v3.ExternalProcessor/Process"


class ExternalProcessor(pb_grpc.ExternalProcessorServicer):
    """Serves ext_proc streams on either transport: `Process` for grpcio, `open_stream` for the
    grpc_h2 server (the default; see grpc_h2.py for why)."""

    def __init__(self, director: Director, cfg: ExtProcConfig) -> None:
        self.director = director
        self.cfg = cfg
        self.full_duplex = cfg.request_body_mode == "FULL_DUPLEX_STREAMED"
        self.response_duplex = cfg.response_body_mode == "FULL_DUPLEX_STREAMED"
        self.active_streams = 0
        self.streams_total = 0
        self.messages_in = 0
        self.messages_out = 0

    def open_stream(self, path: str) -> ExtProcStream | None:
        if path != PROCESS_METHOD:
            return None
        self.active_streams += 1
        self.streams_total += 1
        return ExtProcStream(self)

    async def Process(self, request_iterator, context):  # noqa: N802 (gRPC method name)
        state = StreamState(self.director, self.cfg, self.full_duplex, self.response_duplex)
        late: asyncio.Queue[tuple[list[pb.ProcessingResponse], bool]] = asyncio.Queue()
        state.emit = lambda out, done: late.put_nowait((out, done))
        self.active_streams += 1
        self.streams_total += 1
        try:
            async for req in request_iterator:
                self.messages_in += 1
                out = state.handle(req)
                self.messages_out += len(out)
                for resp in out:
                    yield resp
                if state.done:
                    return
                while state.held is not None or not late.empty():  # a held request's late answer
                    out, done = await late.get()
                    self.messages_out += len(out)
                    for resp in out:
                        yield resp
                    if done:
                        return
        except Exception:  # a bug must cost one request a 500, not the gateway a broken stream
            log.exception("ext_proc stream failed")
            self.director.metrics.rejected(500, "internal-error")
            yield P.immediate_response(500, "internal-error", "endpoint picker error")
        finally:
            self.active_streams -= 1
            state.close()


class ExtProcStream:
    """One stream on the grpc_h2 transport: message bytes in, serialized responses out."""

    __slots__ = ("proc", "state")

    def __init__(self, proc: ExternalProcessor) -> None:
        self.proc = proc
        self.state = StreamState(proc.director, proc.cfg, proc.full_duplex, proc.response_duplex)

    def bind(self, send: Callable[[list[bytes], bool], None]) -> None:
        """The transport's way to answer later (a held request's decision)."""
        proc = self.proc

        def emit(out: list[pb.ProcessingResponse], done: bool) -> None:
            proc.messages_out += len(out)
            send([r.SerializeToString() for r in out], done)

        self.state.emit = emit

    def on_message(self, message: memoryview) -> tuple[list[bytes], bool]:
        proc = self.proc
        proc.messages_in += 1
        try:
            out = self.state.handle(pb.ProcessingRequest.FromString(message))
        except Exception:  # as in Process: a bug costs one request a 500
            log.exception("ext_proc stream failed")
            proc.director.metrics.rejected(500, "internal-error")
            out = [P.immediate_response(500, "internal-error", "endpoint picker error")]
            self.state.done = True
        proc.messages_out += len(out)
        return [r.SerializeToString() for r in out], self.state.done

    def pending(self) -> bool:
        """A held request still owes its answer (grpc_h2 keeps the call open for it)."""
        return self.state.held is not None

    def settled(self) -> bool:
        """The routing decision went out and no response bytes need the model name restored:
        Envoy can forward the rest of the response without us (see grpc_h2 GrpcH2Server.stop)."""
        st = self.state
        return st.decided and st.restorer is None

    def close(self) -> None:
        self.proc.active_streams -= 1
        self.state.close()
