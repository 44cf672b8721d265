"""A do-nothing ext_proc server: the transport floor for the overhead benchmark.

Speaks the picker's protocol on the picker's transport (grpc_h2) in either request body mode:
a fixed destination, the body echoed back in FULL_DUPLEX_STREAMED, but no parsing and no
decision, so `bench_overhead` can show how much of the cost is Envoy's ext_proc and the
transport rather than the picker.

    python -m endpoint_picker.testing.null_processor PORT DESTINATION [BUFFERED|FULL_DUPLEX_STREAMED]
"""

from __future__ import annotations

import asyncio
import sys

from envoy.service.ext_proc.v3 import external_processor_pb2 as pb

from .. import protocol as P
from ..grpc_h2 import GrpcH2Server
from ..loopback import local_host


class NullStream:
    __slots__ = ("destination", "full_duplex", "parts")

    def __init__(self, destination: str, full_duplex: bool) -> None:
        self.destination = destination
        self.full_duplex = full_duplex
        self.parts: list[bytes] = []

    def on_message(self, message: bytes) -> tuple[list[bytes], bool]:
        req = pb.ProcessingRequest.FromString(message)
        kind = req.WhichOneof("request")
        out: list[pb.ProcessingResponse] = []
        if kind == "request_body":
            b = req.request_body
            if self.full_duplex:
                self.parts.append(b.body)
                if b.end_of_stream:
                    out = [P.routing_headers_response(self.destination, None),
                           *P.streamed_chunks(b"".join(self.parts), 62_000, request=True)]
            else:
                out = [P.buffered_body_response(self.destination, None, None)]
        elif kind == "request_headers":
            if req.request_headers.end_of_stream:
                out = [P.routing_headers_response(self.destination, None)]
            elif not self.full_duplex:
                out = [P.EMPTY_REQUEST_HEADERS]
        elif kind == "response_headers":
            out = [P.EMPTY_RESPONSE_HEADERS]
        elif kind == "response_body":
            b = req.response_body
            out = P.streamed_chunks(b.body, 62_000, request=False, end_of_stream=b.end_of_stream)
        elif kind == "request_trailers":
            out = [P.EMPTY_REQUEST_TRAILERS]
        elif kind == "response_trailers":
            out = [P.EMPTY_RESPONSE_TRAILERS]
        return [m.SerializeToString() for m in out], False

    def close(self) -> None:
        pass


async def serve(port: int, destination: str, mode: str) -> None:
    server = GrpcH2Server(lambda path: NullStream(destination, mode == "FULL_DUPLEX_STREAMED"))
    await server.start(local_host(), port)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]), sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "FULL_DUPLEX_STREAMED"))
