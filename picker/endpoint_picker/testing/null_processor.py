"""A do-nothing ext_proc server: the transport floor for the overhead benchmark.

Speaks the same FULL_DUPLEX_STREAMED protocol as the picker (deferred headers answer with a fixed
destination, body echoed back) but makes no decision, so `bench_overhead` can show how much of
the picker's cost is grpcio itself.

    python -m endpoint_picker.testing.null_processor PORT DESTINATION
"""

from __future__ import annotations

import asyncio
import sys

import grpc
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as pb_grpc

from .. import protocol as P


class NullProcessor(pb_grpc.ExternalProcessorServicer):
    def __init__(self, destination: str) -> None:
        self.headers = P.routing_headers_response(destination, None)
        self.bodyless = self.headers
        self.resp_headers = P.EMPTY_RESPONSE_HEADERS

    async def Process(self, request_iterator, context):  # noqa: N802
        parts: list[bytes] = []
        async for req in request_iterator:
            kind = req.WhichOneof("request")
            if kind == "request_body":
                parts.append(req.request_body.body)
                if req.request_body.end_of_stream:
                    yield self.headers
                    for m in P.streamed_chunks(b"".join(parts), 62_000, request=True):
                        yield m
            elif kind == "request_headers":
                if req.request_headers.end_of_stream:
                    yield self.bodyless
            elif kind == "response_headers":
                yield self.resp_headers
            elif kind == "response_body":
                for m in P.streamed_chunks(req.response_body.body, 62_000, request=False,
                                           end_of_stream=req.response_body.end_of_stream):
                    yield m
            elif kind == "request_trailers":
                yield P.EMPTY_REQUEST_TRAILERS
            elif kind == "response_trailers":
                yield P.EMPTY_RESPONSE_TRAILERS


async def serve(port: int, destination: str) -> None:
    server = grpc.aio.server()
    pb_grpc.add_ExternalProcessorServicer_to_server(NullProcessor(destination), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]), sys.argv[2]))
