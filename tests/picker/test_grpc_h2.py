"""grpc_h2 (our HTTP/2 gRPC server) over real sockets on 127.0.0.1: a real grpcio client for
what a gRPC client does, raw HTTP/2 frames for what grpcio never sends.

Every await is bounded (`step`) and every test body too (`run`), so a hang fails in seconds."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
import time
from dataclasses import dataclass
from typing import AsyncIterator, Awaitable, Callable, TypeVar

import grpc
import pytest
from hpack import Decoder, Encoder

from endpoint_picker.grpc_h2 import GrpcH2Server

pytestmark = pytest.mark.timeout(60)  # backstop; each test bounds itself far below this

METHOD = "/envoy.service.ext_proc.v3.ExternalProcessor/Process"
STEP = 5.0  # seconds any one await may take
T = TypeVar("T")


async def step(aw: Awaitable[T], timeout: float = STEP) -> T:
    return await asyncio.wait_for(aw, timeout)


def run(test: Callable[[], Awaitable[None]], timeout: float = 30) -> None:
    asyncio.run(asyncio.wait_for(test(), timeout))


async def eventually(cond: Callable[[], bool], timeout: float = STEP) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


# The server side: an echo handler with a few commands.


class Echo:
    """b"raise" -> raises; b"done" -> two responses and done; b"big:N" -> one N-byte response;
    anything else comes back unchanged."""

    def __init__(self) -> None:
        self.seen: list[bytes] = []
        self.closed = 0

    def on_message(self, message: bytes) -> tuple[list[bytes], bool]:
        m = bytes(message)
        self.seen.append(m)
        if m == b"raise":
            raise RuntimeError("handler bug")
        if m == b"done":
            return [b"bye-1", b"bye-2"], True
        if m.startswith(b"big:"):
            n = int(m[4:])
            return [bytes(i % 251 for i in range(n))], False
        return [m], False

    def close(self) -> None:
        self.closed += 1

    def settled(self) -> bool:
        return b"settle" in self.seen


class Methods:
    def __init__(self) -> None:
        self.handlers: list[Echo] = []
        self.unknown: list[str] = []

    def __call__(self, path: str) -> Echo | None:
        if path != METHOD:
            self.unknown.append(path)
            return None
        h = Echo()
        self.handlers.append(h)
        return h


@contextlib.asynccontextmanager
async def serving() -> AsyncIterator[tuple[GrpcH2Server, Methods]]:
    methods = Methods()
    server = GrpcH2Server(methods)
    await step(server.start("127.0.0.1", 0))
    try:
        yield server, methods
    finally:
        await step(server.stop(0))


@contextlib.asynccontextmanager
async def channel(port: int) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        yield ch


def open_call(ch: grpc.aio.Channel, path: str = METHOD) -> grpc.aio.StreamStreamCall:
    # No serializers: messages are bytes both ways.
    return ch.stream_stream(path, request_serializer=None, response_deserializer=None)()


async def round_trip(call: grpc.aio.StreamStreamCall, message: bytes) -> bytes:
    await step(call.write(message))
    return await step(call.read())


async def finish_ok(call: grpc.aio.StreamStreamCall) -> None:
    """Half-close and expect the server to end the call with OK."""
    await step(call.done_writing())
    assert await step(call.code()) == grpc.StatusCode.OK


async def read_to_end(call: grpc.aio.StreamStreamCall) -> list[bytes]:
    out = []
    for _ in range(10_000):
        r = await step(call.read())
        if r is grpc.aio.EOF:
            return out
        out.append(r)
    raise AssertionError("stream never ended")


# grpcio client


def test_grpc_h2_many_messages_in_one_stream_pipelined():
    async def main():
        async with serving() as (server, methods), channel(server.port) as ch:
            call = open_call(ch)
            sent = [b"m%d-" % i + b"x" * (i % 97) for i in range(400)]

            async def writer():
                for m in sent:
                    await step(call.write(m))
                await step(call.done_writing())

            w = asyncio.create_task(writer())
            got = await read_to_end(call)
            await step(w)
            assert got == sent
            assert await step(call.code()) == grpc.StatusCode.OK
            (h,) = methods.handlers
            assert h.seen == sent and h.closed == 1
            assert len(server.connections) == 1 and server.active_streams == 0

    run(main)


def test_grpc_h2_fifty_concurrent_streams_on_one_connection_answer_in_order():
    async def main():
        async with serving() as (server, methods), channel(server.port) as ch:
            async def one(k: int) -> list[bytes]:
                call = open_call(ch)
                got = [await round_trip(call, b"s%d-m%d" % (k, i)) for i in range(20)]
                await step(call.done_writing())
                assert await read_to_end(call) == []
                assert await step(call.code()) == grpc.StatusCode.OK
                return got

            results = await step(asyncio.gather(*(one(k) for k in range(50))), 20)
            for k, got in enumerate(results):
                assert got == [b"s%d-m%d" % (k, i) for i in range(20)]
            assert len(server.connections) == 1  # all 50 multiplexed on one HTTP/2 connection
            assert len(methods.handlers) == 50
            assert all(h.closed == 1 for h in methods.handlers)
            assert server.active_streams == 0

    run(main)


def test_grpc_h2_large_messages_both_ways_across_flow_control_windows():
    async def main():
        async with serving() as (server, methods), channel(server.port) as ch:
            call = open_call(ch)
            medium = os.urandom(20_000)  # more than one 16 KB frame
            assert await round_trip(call, medium) == medium
            huge = os.urandom(3_000_000)  # far past the 64 KB default windows, each way
            assert await step(round_trip(call, huge), 15) == huge
            big = await step(round_trip(call, b"big:3000000"), 15)  # small request, 3 MB answer
            assert big == bytes(i % 251 for i in range(3_000_000))
            assert await round_trip(call, b"after") == b"after"  # the stream is still in step
            await finish_ok(call)
            assert [len(m) for m in methods.handlers[0].seen] == [20_000, 3_000_000, 11, 5]

    run(main)


def test_grpc_h2_handler_done_sends_responses_then_ok_and_closes_once():
    async def main():
        async with serving() as (server, methods), channel(server.port) as ch:
            call = open_call(ch)
            assert await round_trip(call, b"a") == b"a"
            await step(call.write(b"done"))  # the client does not half-close: the server ends the call
            assert await read_to_end(call) == [b"bye-1", b"bye-2"]
            assert await step(call.code()) == grpc.StatusCode.OK
            (h,) = methods.handlers
            assert h.closed == 1
            # The connection carries on.
            call2 = open_call(ch)
            assert await round_trip(call2, b"b") == b"b"
            await finish_ok(call2)
            assert h.closed == 1 and h.seen == [b"a", b"done"]

    run(main)


def test_grpc_h2_handler_exception_is_internal_for_that_stream_only():
    async def main():
        async with serving() as (server, methods), channel(server.port) as ch:
            good = open_call(ch)
            assert await round_trip(good, b"1") == b"1"
            bad = open_call(ch)
            await step(bad.write(b"raise"))
            assert await step(bad.code()) == grpc.StatusCode.INTERNAL
            good_h, bad_h = methods.handlers
            assert bad_h.closed == 1 and good_h.closed == 0
            assert await round_trip(good, b"2") == b"2"  # same connection, untouched
            other = open_call(ch)
            assert await round_trip(other, b"3") == b"3"
            for c in (good, other):
                await finish_ok(c)
            assert [h.closed for h in methods.handlers] == [1, 1, 1]
            assert len(server.connections) == 1

    run(main)


def test_grpc_h2_unknown_method_is_unimplemented():
    async def main():
        async with serving() as (server, methods), channel(server.port) as ch:
            call = open_call(ch, "/some.Service/Other")  # starts with its HEADERS; no message needed
            assert await step(call.code()) == grpc.StatusCode.UNIMPLEMENTED
            assert "/some.Service/Other" in await step(call.details())
            assert methods.unknown == ["/some.Service/Other"] and methods.handlers == []
            ok = open_call(ch)  # the connection is fine
            assert await round_trip(ok, b"y") == b"y"
            await finish_ok(ok)

    run(main)


def test_grpc_h2_client_cancel_resets_stream_and_closes_handler_once():
    async def main():
        async with serving() as (server, methods), channel(server.port) as ch:
            call = open_call(ch)
            assert await round_trip(call, b"a") == b"a"
            (h,) = methods.handlers
            assert h.closed == 0
            call.cancel()
            await eventually(lambda: h.closed == 1)  # RST_STREAM reached the server
            assert server.active_streams == 0
            again = open_call(ch)
            assert await round_trip(again, b"b") == b"b"
            await finish_ok(again)
            assert h.closed == 1

    run(main)


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def test_grpc_h2_stop_refuses_new_connections_and_lets_open_stream_finish():
    async def main():
        async with serving() as (server, methods), channel(server.port) as ch:
            call = open_call(ch)
            assert await round_trip(call, b"before") == b"before"
            port = server.port
            started = time.monotonic()
            stopping = asyncio.create_task(server.stop(5))
            await eventually(lambda: _refused(port))
            assert not stopping.done()  # still draining the open stream
            assert await round_trip(call, b"during") == b"during"
            await finish_ok(call)
            await step(stopping)
            assert time.monotonic() - started < 2  # returned once the stream finished, not at grace
            (h,) = methods.handlers
            assert h.closed == 1 and h.seen == [b"before", b"during"]

    run(main)


def test_grpc_h2_stop_closes_streams_left_open_after_grace():
    async def main():
        async with serving() as (server, methods), channel(server.port) as ch:
            call = open_call(ch)
            assert await round_trip(call, b"a") == b"a"
            (h,) = methods.handlers
            port = server.port
            started = time.monotonic()
            stopping = asyncio.create_task(server.stop(0.4))
            await asyncio.sleep(0.2)
            assert h.closed == 0 and not stopping.done()  # still within grace
            await step(stopping)
            assert time.monotonic() - started >= 0.4
            await eventually(lambda: h.closed == 1, timeout=1)
            assert server.connections == set()
            assert await step(call.code()) == grpc.StatusCode.UNAVAILABLE
            assert _refused(port)

    run(main)


def test_grpc_h2_stop_ends_settled_streams_with_ok_at_once_and_drains_the_others():
    """A stopping server ends a call whose handler is settled with OK right away (an ext_proc
    stream past its decision: Envoy forwards the rest of the response without the picker), also
    one that settles during the drain, and waits for the unsettled one up to the grace."""
    async def main():
        async with serving() as (server, methods), channel(server.port) as ch:
            settled, later, busy = open_call(ch), open_call(ch), open_call(ch)
            assert await round_trip(settled, b"settle") == b"settle"
            assert await round_trip(later, b"a") == b"a"
            assert await round_trip(busy, b"b") == b"b"
            started = time.monotonic()
            stopping = asyncio.create_task(server.stop(0.8))
            assert await step(settled.code()) == grpc.StatusCode.OK
            assert time.monotonic() - started < 0.4
            assert not stopping.done()
            assert await round_trip(later, b"settle") == b"settle"
            assert await step(later.code()) == grpc.StatusCode.OK
            await step(stopping)
            assert time.monotonic() - started >= 0.8
            assert await step(busy.code()) == grpc.StatusCode.UNAVAILABLE
            assert [h.closed for h in methods.handlers] == [1, 1, 1]

    run(main)


# raw HTTP/2

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20
PROTOCOL_ERROR, COMPRESSION_ERROR = 0x1, 0x9


def frame(ftype: int, flags: int, sid: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + struct.pack(">BBI", ftype, flags, sid) + payload


def grpc_message(body: bytes) -> bytes:
    return b"\x00" + struct.pack(">I", len(body)) + body


def request_headers(enc: Encoder, path: str = METHOD) -> bytes:
    return enc.encode([(":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "picker"),
                       ("content-type", "application/grpc"), ("te", "trailers")])


@dataclass
class Frame:
    type: int
    flags: int
    sid: int
    payload: bytes


class RawClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.decoder = Decoder()

    @classmethod
    async def connect(cls, port: int, preface: bytes = PREFACE, settings: bytes = b"") -> RawClient:
        reader, writer = await step(asyncio.open_connection("127.0.0.1", port))
        c = cls(reader, writer)
        c.send(preface + frame(SETTINGS, 0, 0, settings) if preface == PREFACE else preface)
        return c

    def send(self, *frames: bytes) -> None:
        self.writer.write(b"".join(frames))

    async def frame(self) -> Frame:
        head = await step(self.reader.readexactly(9))
        length = int.from_bytes(head[:3], "big")
        ftype, flags, sid = struct.unpack(">BBI", head[3:])
        return Frame(ftype, flags, sid & 0x7FFFFFFF, await step(self.reader.readexactly(length)))

    async def until(self, ftype: int, flags: int = 0) -> tuple[Frame, list[Frame]]:
        """The next frame of `ftype` with all of `flags`, and the frames before it."""
        before = []
        for _ in range(10_000):
            f = await self.frame()
            if f.type == ftype and f.flags & flags == flags:
                return f, before
            before.append(f)
        raise AssertionError("frame never came")

    async def sync(self) -> list[Frame]:
        """Everything the server sent in answer to what we sent so far: it handles frames in
        order, so all of it precedes the ACK of a PING sent last."""
        self.send(frame(PING, 0, 0, b"syncsync"))
        for _ in range(10_000):
            f, before = await self.until(PING, ACK)
            if f.payload == b"syncsync":
                return before
        raise AssertionError("no PING ACK")

    def headers(self, f: Frame) -> dict[str, str]:
        assert f.type == HEADERS and f.flags & END_HEADERS
        return dict(self.decoder.decode(f.payload))

    async def response(self, sid: int) -> tuple[dict[str, str], bytes, dict[str, str]]:
        """(headers, DATA bytes, trailers) of one stream, read until its END_STREAM."""
        heads, data = [], b""
        for _ in range(10_000):
            f = await self.frame()
            if f.sid != sid:
                continue
            if f.type == HEADERS:
                heads.append(self.headers(f))
            elif f.type == DATA:
                data += f.payload
            if f.flags & END_STREAM:
                assert f.type == HEADERS
                return heads[0], data, heads[-1]
        raise AssertionError("stream never ended")

    async def goaway(self) -> tuple[int, int]:
        f, _ = await self.until(GOAWAY)
        last, code = struct.unpack(">II", f.payload[:8])
        return last, code

    async def closed(self) -> bool:
        return await step(self.reader.read()) == b""  # EOF (anything left after GOAWAY is read here)

    def close(self) -> None:
        self.writer.close()


def test_grpc_h2_ping_gets_ack_with_same_payload():
    async def main():
        async with serving() as (server, _):
            c = await RawClient.connect(server.port)
            c.send(frame(PING, 0, 0, b"\x01\x02\x03\x04\x05\x06\x07\x08"))
            f, _ = await c.until(PING)
            assert (f.flags, f.sid, f.payload) == (ACK, 0, b"\x01\x02\x03\x04\x05\x06\x07\x08")
            c.send(frame(PING, ACK, 0, b"ackackac"))  # an ACK is not answered
            before = await c.sync()
            assert [f for f in before if f.type == PING] == []
            c.close()

    run(main)


def test_grpc_h2_bad_preface_gets_goaway_and_close():
    async def main():
        async with serving() as (server, methods):
            c = await RawClient.connect(server.port, preface=b"GET / HTTP/1.1\r\nHost: picker\r\n\r\n")
            assert await c.goaway() == (0, PROTOCOL_ERROR)
            assert await c.closed()
            await eventually(lambda: not server.connections)
            assert methods.handlers == []

    run(main)


def test_grpc_h2_continuation_split_header_block_is_accepted():
    async def main():
        async with serving() as (server, methods):
            c = await RawClient.connect(server.port)
            enc = Encoder()
            block = request_headers(enc)
            a, b = len(block) // 3, 2 * len(block) // 3
            c.send(frame(HEADERS, 0, 1, block[:a]), frame(CONTINUATION, 0, 1, block[a:b]),
                   frame(CONTINUATION, END_HEADERS, 1, block[b:]),
                   frame(DATA, END_STREAM, 1, grpc_message(b"hello")))
            headers, data, trailers = await c.response(1)
            assert headers[":status"] == "200" and headers["content-type"] == "application/grpc"
            assert data == grpc_message(b"hello")
            assert trailers["grpc-status"] == "0"
            # The second block is mostly dynamic-table references: the split block kept HPACK in step.
            c.send(frame(HEADERS, END_HEADERS, 3, request_headers(enc)),
                   frame(DATA, END_STREAM, 3, grpc_message(b"again")))
            assert (await c.response(3))[1] == grpc_message(b"again")
            assert [h.seen for h in methods.handlers] == [[b"hello"], [b"again"]]
            c.close()

    run(main)


def test_grpc_h2_padded_headers_and_data_frames_are_unpadded():
    async def main():
        async with serving() as (server, methods):
            c = await RawClient.connect(server.port)
            block = request_headers(Encoder())
            priority = struct.pack(">IB", 0, 15)  # stream dependency, weight
            c.send(frame(HEADERS, END_HEADERS | PADDED | PRIORITY_FLAG, 1, bytes([4]) + priority + block + b"\0" * 4))
            msg = grpc_message(b"padded message body")
            # One gRPC message across two padded DATA frames (one with pad length 0), then a
            # second message with the maximum padding a frame of its size can carry.
            c.send(frame(DATA, PADDED, 1, bytes([9]) + msg[:7] + b"\0" * 9),
                   frame(DATA, PADDED, 1, bytes([0]) + msg[7:]),
                   frame(DATA, PADDED | END_STREAM, 1, bytes([200]) + grpc_message(b"two") + b"\0" * 200))
            headers, data, trailers = await c.response(1)
            assert data == msg + grpc_message(b"two")
            assert trailers["grpc-status"] == "0"
            assert methods.handlers[0].seen == [b"padded message body", b"two"]
            c.close()

    run(main)


_REQ = request_headers(Encoder())  # a fresh encoder's block: literals only


@pytest.mark.parametrize(
    "frames,last_stream,code",
    [
        pytest.param([frame(HEADERS, 0, 1, _REQ[:5]), frame(PING, 0, 0, b"12345678")], 1, PROTOCOL_ERROR,
                     id="header-block-interrupted"),
        pytest.param([frame(HEADERS, END_HEADERS, 1, _REQ), frame(DATA, PADDED, 1, b"")], 1, PROTOCOL_ERROR,
                     id="empty-padded-data"),
        pytest.param([frame(HEADERS, END_HEADERS, 1, _REQ), frame(DATA, PADDED, 1, b"\x05abc")], 1, PROTOCOL_ERROR,
                     id="padding-exceeds-frame"),
        pytest.param([frame(HEADERS, END_HEADERS, 1, b"\x83\x86\x04")], 1, COMPRESSION_ERROR,
                     id="truncated-hpack-string"),
        pytest.param([frame(HEADERS, END_HEADERS, 1, b"\xbe")], 1, COMPRESSION_ERROR, id="hpack-index-out-of-range"),
        pytest.param([frame(DATA, 0, 1, grpc_message(b"x"))], 0, PROTOCOL_ERROR, id="data-on-idle-stream"),
        pytest.param([frame(HEADERS, END_HEADERS, 2, _REQ)], 0, PROTOCOL_ERROR, id="even-stream-id"),
        pytest.param([frame(HEADERS, END_HEADERS, 3, _REQ), frame(HEADERS, END_HEADERS, 1, _REQ)], 3, PROTOCOL_ERROR,
                     id="stream-id-going-backwards"),
        pytest.param([frame(PUSH_PROMISE, END_HEADERS, 1, b"\0\0\0\2")], 0, PROTOCOL_ERROR, id="push-promise"),
        pytest.param([frame(WINDOW_UPDATE, 0, 0, b"\0\0\0\0")], 0, PROTOCOL_ERROR, id="window-update-of-zero"),
        pytest.param([frame(HEADERS, END_HEADERS, 1, _REQ), frame(WINDOW_UPDATE, 0, 1, struct.pack(">I", 2**31 - 1))],
                     1, 0x3, id="stream-window-overflow"),
        pytest.param([struct.pack(">I", (1 << 20) + 1)[1:] + struct.pack(">BBI", DATA, 0, 1)], 0, 0x6,
                     id="frame-above-our-max-frame-size"),
    ],
)
def test_grpc_h2_connection_errors_get_goaway_with_code_and_close(frames: list[bytes], last_stream: int, code: int):
    async def main():
        async with serving() as (server, methods):
            c = await RawClient.connect(server.port)
            c.send(*frames)
            assert await c.goaway() == (last_stream, code)
            assert await c.closed()
            await eventually(lambda: not server.connections)
            assert all(h.closed == 1 for h in methods.handlers)  # streams opened before the error

    run(main)


@pytest.mark.parametrize(
    "data_frames,status,responses",
    [
        pytest.param([frame(DATA, END_STREAM, 1, grpc_message(b"whole")[:7])], "13", b"", id="truncated-message"),
        pytest.param([frame(DATA, END_STREAM, 1, b"\x01" + grpc_message(b"zip")[1:])], "12", b"",
                     id="compressed-message"),
        pytest.param([frame(DATA, 0, 1, grpc_message(b"a") + grpc_message(b"b")[:3]),
                      frame(DATA, 0, 1, grpc_message(b"b")[3:]),
                      frame(HEADERS, END_HEADERS | END_STREAM, 1, Encoder().encode([("x-trailer", "1")]))],
                     "0", grpc_message(b"a") + grpc_message(b"b"), id="request-trailers-end-the-call"),
    ],
)
def test_grpc_h2_stream_outcomes_from_raw_frames(data_frames: list[bytes], status: str, responses: bytes):
    async def main():
        async with serving() as (server, methods):
            c = await RawClient.connect(server.port)
            c.send(frame(HEADERS, END_HEADERS, 1, request_headers(Encoder())), *data_frames)
            _, data, trailers = await c.response(1)
            assert (trailers["grpc-status"], data) == (status, responses)
            assert methods.handlers[0].closed == 1
            c.send(frame(PING, 0, 0, b"stillok!"))  # a stream-level failure leaves the connection up
            f, _ = await c.until(PING, ACK)
            assert f.payload == b"stillok!"
            c.close()

    run(main)


def test_grpc_h2_frames_split_at_every_byte_boundary_are_reassembled():
    """Preface, frame headers, payloads and gRPC prefixes all cut at arbitrary points (the
    partial-frame buffer in data_received and the partial-message parts per stream)."""
    async def main():
        async with serving() as (server, methods):
            reader, writer = await step(asyncio.open_connection("127.0.0.1", server.port))
            writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            c = RawClient(reader, writer)
            messages = [b"first", b"", b"third" * 50]
            wire = (PREFACE + frame(SETTINGS, 0, 0) + frame(HEADERS, END_HEADERS, 1, request_headers(Encoder()))
                    + frame(DATA, 0, 1, b"".join(grpc_message(m) for m in messages[:2]))
                    + frame(DATA, END_STREAM, 1, grpc_message(messages[2])))
            pos, size = 0, 1
            while pos < len(wire):
                c.send(wire[pos:pos + size])
                await step(writer.drain())
                await asyncio.sleep(0.002)
                pos += size
                size = size % 13 + 1
            _, data, trailers = await c.response(1)
            assert data == b"".join(grpc_message(m) for m in messages)
            assert trailers["grpc-status"] == "0"
            assert methods.handlers[0].seen == messages
            c.close()

    run(main)


def test_grpc_h2_response_data_respects_peer_stream_and_connection_windows():
    async def main():
        async with serving() as (server, methods):
            # Stream windows of 1000 bytes; the connection window stays at the default 65535.
            c = await RawClient.connect(server.port, settings=struct.pack(">HI", 0x4, 1000))
            enc = Encoder()
            c.send(frame(HEADERS, END_HEADERS, 1, request_headers(enc)),
                   frame(DATA, END_STREAM, 1, grpc_message(b"big:5000")))
            sent = await c.sync()
            data = [f for f in sent if f.type == DATA and f.sid == 1]
            assert sum(len(f.payload) for f in data) == 1000  # exactly the stream window
            assert not [f for f in sent if f.type == HEADERS and f.flags & END_STREAM]  # trailers wait
            c.send(frame(WINDOW_UPDATE, 0, 1, struct.pack(">I", 3000)))
            sent = await c.sync()
            assert sum(len(f.payload) for f in sent if f.type == DATA) == 3000
            c.send(frame(WINDOW_UPDATE, 0, 1, struct.pack(">I", 1 << 20)))
            _, rest, trailers = await c.response(1)
            body = b"".join(f.payload for f in data) + b"".join(f.payload for f in sent if f.type == DATA) + rest
            assert body == grpc_message(bytes(i % 251 for i in range(5000)))
            assert trailers["grpc-status"] == "0"

            # Now the connection window is the limit: 65535 minus the 5005 bytes already sent.
            c.send(frame(SETTINGS, 0, 0, struct.pack(">HI", 0x4, 1 << 24)))
            c.send(frame(HEADERS, END_HEADERS, 3, request_headers(enc)),
                   frame(DATA, END_STREAM, 3, grpc_message(b"big:100000")))
            sent = await c.sync()
            data = [f for f in sent if f.type == DATA and f.sid == 3]
            assert sum(len(f.payload) for f in data) == 65535 - 5005
            assert max(len(f.payload) for f in data) <= 16_384  # our SETTINGS never raised it
            c.send(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 1 << 20)))
            sent = await c.sync()
            rest = b"".join(f.payload for f in sent if f.type == DATA)
            assert b"".join(f.payload for f in data) + rest == grpc_message(bytes(i % 251 for i in range(100_000)))
            assert sent[-1].type == HEADERS and sent[-1].flags & END_STREAM  # trailers after the last DATA
            c.close()

    run(main)


def test_grpc_h2_trailers_racing_our_reset_are_decoded_and_dropped():
    """done=True ends the call and resets the stream; trailers the client sent meanwhile must not
    kill the connection, and their HPACK entries must still be applied."""
    async def main():
        async with serving() as (server, methods):
            c = await RawClient.connect(server.port)
            enc = Encoder()
            c.send(frame(HEADERS, END_HEADERS, 1, request_headers(enc)), frame(DATA, 0, 1, grpc_message(b"done")))
            _, data, trailers = await c.response(1)
            assert trailers["grpc-status"] == "0" and data == grpc_message(b"bye-1") + grpc_message(b"bye-2")
            rst, _ = await c.until(RST_STREAM)
            assert (rst.sid, rst.payload) == (1, b"\0\0\0\0")
            # Trailers adding a dynamic-table entry, then a stream whose block references it.
            c.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, enc.encode([("x-late-trailer", "1")])))
            block = enc.encode([(":method", "POST"), (":scheme", "http"), (":path", METHOD), (":authority", "picker"),
                                ("content-type", "application/grpc"), ("te", "trailers"), ("x-late-trailer", "1")])
            c.send(frame(HEADERS, END_HEADERS, 3, block), frame(DATA, END_STREAM, 3, grpc_message(b"next")))
            assert (await c.response(3))[1] == grpc_message(b"next")
            assert [h.closed for h in methods.handlers] == [1, 1]
            c.close()

    run(main)


def test_grpc_h2_grpc_message_is_percent_encoded():
    async def main():
        async with serving() as (server, _):
            c = await RawClient.connect(server.port)
            c.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, request_headers(Encoder(), "/no/such 100%/método")))
            _, _, trailers = await c.response(1)
            assert trailers["grpc-status"] == "12"
            assert trailers["grpc-message"] == "unknown method /no/such 100%25/m%C3%A9todo"
            c.close()

    run(main)


class ClosesBadly(Echo):
    def close(self) -> None:
        super().close()
        raise RuntimeError("close bug")


def test_grpc_h2_handler_close_bug_does_not_leave_other_streams_open():
    async def main():
        handlers: list[Echo] = []

        def methods(path: str) -> Echo:
            handlers.append(ClosesBadly() if not handlers else Echo())
            return handlers[-1]

        server = GrpcH2Server(methods)
        await step(server.start("127.0.0.1", 0))
        c = await RawClient.connect(server.port)
        enc = Encoder()
        c.send(frame(HEADERS, END_HEADERS, 1, request_headers(enc)), frame(HEADERS, END_HEADERS, 3, request_headers(enc)))
        await c.sync()
        assert len(handlers) == 2
        await step(server.stop(0))  # closes both: the first one's bug must not skip the second
        assert [h.closed for h in handlers] == [1, 1]
        c.close()

    run(main)
