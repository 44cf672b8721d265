"""A held request over real gRPC, on both ext_proc transports: the message that completes the
request is answered with a message-timeout override only, the decision follows on the same open
stream once an endpoint is ready, and a client that leaves gives its place up."""

from __future__ import annotations

import asyncio

import grpc
import orjson
import pytest
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as pb_grpc

from endpoint_picker.config import load_config
from endpoint_picker.datastore import Datastore, Endpoint
from endpoint_picker.director import Director
from endpoint_picker.grpc_h2 import GrpcH2Server
from endpoint_picker.scheduling.registry import build_registry
from endpoint_picker.selfmetrics import SelfMetrics
from endpoint_picker.server import ExternalProcessor

from .test_servicer import body_msgs, header_value, headers_msg

EP = Endpoint("pod0", "default", "10.0.0.9", 8000)


def empty_pool_director() -> Director:
    cfg = load_config({"scrape": {"engine": "none"}, "flow_control": {"ttl_s": 4, "no_endpoint_ttl_s": 6}})
    store = Datastore()
    store.set_endpoints([])
    store.synced = True
    return Director(cfg, store, build_registry().build(cfg.scheduling), SelfMetrics())


async def serve(transport: str, processor: ExternalProcessor):
    if transport == "grpcio":
        server = grpc.aio.server()
        pb_grpc.add_ExternalProcessorServicer_to_server(processor, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        return server, port
    server = GrpcH2Server(processor.open_stream)
    await server.start("127.0.0.1", 0)
    return server, server.port


@pytest.mark.parametrize("transport", ["grpcio", "h2"])
@pytest.mark.parametrize("mode", ["FULL_DUPLEX_STREAMED", "BUFFERED"])
def test_held_request_is_answered_on_the_open_stream_once_an_endpoint_is_ready(transport, mode):
    async def main():
        d = empty_pool_director()
        processor = ExternalProcessor(d, load_config({"ext_proc": {"request_body_mode": mode}}).ext_proc)
        server, port = await serve(transport, processor)
        body = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
        outgoing: asyncio.Queue = asyncio.Queue()
        for m in [headers_msg("/v1/chat/completions"), *body_msgs(body, 1 << 20)]:
            outgoing.put_nowait(m)

        async def requests():
            while True:
                m = await outgoing.get()
                if m is None:
                    return
                yield m

        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
                call = pb_grpc.ExternalProcessorStub(ch).Process(requests())
                got = []
                if mode == "BUFFERED":
                    got.append(await call.read())  # headers continued at once
                    assert got[0] == pb.ProcessingResponse(request_headers=pb.HeadersResponse())
                hold = await asyncio.wait_for(call.read(), 5)
                assert hold.WhichOneof("response") is None
                assert hold.override_message_timeout.ToMilliseconds() == 8000  # no-endpoint TTL 6 s + 2 s margin
                assert len(d.flow.queue) == 1
                await asyncio.sleep(0.3)
                d.store.set_endpoints([EP])
                d.flow.kick()
                decision = await asyncio.wait_for(call.read(), 5)
                assert header_value(decision, "x-gateway-destination-endpoint") == "10.0.0.9:8000"
                assert decision.WhichOneof("response") == ("request_headers" if mode == "FULL_DUPLEX_STREAMED" else "request_body")
                outgoing.put_nowait(None)
                call.cancel()
        finally:
            await server.stop(0)
        assert len(d.flow.queue) == 0
        # grpc.aio runs a cancelled handler's cleanup a few loop turns after stop() returns.
        for _ in range(200):
            if processor.active_streams == 0:
                break
            await asyncio.sleep(0.01)
        assert processor.active_streams == 0

    asyncio.run(main())


@pytest.mark.parametrize("transport", ["grpcio", "h2"])
def test_a_client_gone_while_held_leaves_the_queue(transport):
    async def main():
        d = empty_pool_director()
        processor = ExternalProcessor(d, load_config({}).ext_proc)
        server, port = await serve(transport, processor)
        body = orjson.dumps({"model": "m", "prompt": "hi"})
        gate = asyncio.Event()

        async def requests():
            for m in [headers_msg("/v1/completions"), *body_msgs(body, 1 << 20)]:
                yield m
            await gate.wait()

        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
                call = pb_grpc.ExternalProcessorStub(ch).Process(requests())
                hold = await asyncio.wait_for(call.read(), 5)
                assert hold.HasField("override_message_timeout")
                call.cancel()
                for _ in range(50):
                    if not len(d.flow.queue):
                        break
                    await asyncio.sleep(0.05)
        finally:
            gate.set()
            await server.stop(0)
        assert len(d.flow.queue) == 0
        assert 'outcome="cancelled"} 1' in d.metrics.render()

    asyncio.run(main())


def test_refusal_at_ttl_is_an_immediate_response_on_the_open_stream():
    async def main():
        d = empty_pool_director()
        processor = ExternalProcessor(d, load_config({}).ext_proc)
        server, port = await serve("h2", processor)
        body = orjson.dumps({"model": "m", "prompt": "hi"})
        task = asyncio.create_task(d.flow.run())
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
                call = pb_grpc.ExternalProcessorStub(ch).Process(iter([headers_msg("/v1/completions"), *body_msgs(body, 100)]))
                out = await asyncio.wait_for(collect(call), 10)
        finally:
            task.cancel()
            await server.stop(0)
        assert out[0].HasField("override_message_timeout")
        imm = out[1].immediate_response
        assert imm.status.code == 503
        assert orjson.loads(imm.body)["error"] == {
            "message": "no endpoint became ready within 6s (the pool may be scaling up from zero)",
            "type": "service_unavailable_error", "param": None, "code": "rejected-no-endpoints"}

    asyncio.run(main())


async def collect(call) -> list[pb.ProcessingResponse]:
    return [r async for r in call]
