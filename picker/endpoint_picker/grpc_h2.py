"""A small gRPC server over HTTP/2 (h2c with prior knowledge, or h2 over TLS) for one bidi method.

Why not grpcio: its asyncio server costs ~0.1 ms of CPU per message, and one proxied request is
~9 ext_proc messages, so grpcio alone capped the picker near 750 requests/s on one core. Here a
message is handled synchronously inside `data_received` (the ext_proc state machine never
awaits), and every answer produced by one socket read leaves in one `write`.

Scope is what a gateway's ext_proc client needs: HTTP/2 framing (RFC 9113) with flow control in
both directions, HPACK decoding of request headers (hpack_decoder.py; our own headers are
literals that never touch the dynamic table), gRPC length-prefixed messages without compression,
trailers-only errors, RST_STREAM, PING, GOAWAY, and a graceful drain, in cleartext or over TLS
(asyncio's). Anything else is a connection error; compression and server push are out of scope.

Modules: this one holds the server and the reading half of a connection (frames in, flow-control
credit out, messages to handlers); grpc_h2_send.py the sending half (`SendSide`: DATA under the
peer's windows, trailers, stream ends, GOAWAY); grpc_h2_stream.py the handler interface and
per-stream state; grpc_h2_wire.py the frame and status constants and encoders.
"""

from __future__ import annotations

import asyncio
import logging
import ssl as ssl_mod
import struct
from typing import Callable

from hpack.exceptions import HPACKError

from .grpc_h2_send import SendSide
from .grpc_h2_stream import Stream, StreamHandler
from .grpc_h2_wire import (ACK, COMPRESSION_ERROR, CONTINUATION, DATA, DEFAULT_WINDOW, END_HEADERS, END_STREAM,
                           ENHANCE_YOUR_CALM, FLOW_CONTROL_ERROR, FRAME_HEADER, FRAME_SIZE_ERROR, GOAWAY, GRPC_INTERNAL,
                           GRPC_UNIMPLEMENTED, HEADERS, MAX_WINDOW, NO_ERROR, OK_TRAILERS, PADDED, PING, PREFACE,
                           PRIORITY_FLAG, PROTOCOL_ERROR, PUSH_PROMISE, REFUSED_STREAM, RST_STREAM, SETTINGS,
                           SETTINGS_INITIAL_WINDOW_SIZE, SETTINGS_MAX_FRAME_SIZE, U32, WINDOW_UPDATE, ConnectionError_,
                           frame)
from .hpack_decoder import HeaderDecoder

log = logging.getLogger(__name__)

# What we let a peer send before we acknowledge: large enough that a 64 MB body never waits on
# a WINDOW_UPDATE round trip, acknowledged in halves.
STREAM_WINDOW = 1 << 26
CONNECTION_WINDOW = 1 << 30
# Large frames mean fewer frame headers to parse for big bodies (RFC 9113 allows up to 2^24-1).
OUR_MAX_FRAME = 1 << 20
# An encoded header block (HEADERS + CONTINUATION) above this is refused: decoded headers are
# capped at 64 KiB (hpack_decoder.MAX_HEADER_LIST) and HPACK never expands less than 1:4.
MAX_HEADER_BLOCK = 256 * 1024


class GrpcH2Server:
    """Listens and tracks connections; `open_stream(path)` returns a handler for a known method
    or None (answered UNIMPLEMENTED)."""

    def __init__(self, open_stream: Callable[[str], StreamHandler | None]) -> None:
        self.open_stream = open_stream
        self.connections: set[GrpcH2Connection] = set()
        self._server: asyncio.base_events.Server | None = None

    async def start(self, host: str, port: int, ssl: "ssl_mod.SSLContext | None" = None) -> None:
        """Listen on host:port; with `ssl`, HTTP/2 over TLS (the context should offer ALPN h2)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: GrpcH2Connection(self), host, port, reuse_address=True, ssl=ssl)

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    @property
    def active_streams(self) -> int:
        return sum(len(c.streams) for c in self.connections)

    async def stop(self, grace: float) -> None:
        """Stop accepting, GOAWAY every connection, end settled streams with OK as soon as they
        settle, let the others finish for up to `grace` seconds, then close what is left (their
        handlers are closed too; the client sees those streams reset)."""
        if self._server is not None:
            self._server.close()
        for c in list(self.connections):
            c.goaway(NO_ERROR)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while True:
            for c in list(self.connections):
                c.end_settled()
            if not self.active_streams or loop.time() >= deadline:
                break
            await asyncio.sleep(0.05)
        for c in list(self.connections):
            c.close()
        if self._server is not None:
            await self._server.wait_closed()


class GrpcH2Connection(SendSide, asyncio.Protocol):
    """One client connection: reads and dispatches frames; responses go out through SendSide."""

    def __init__(self, server: GrpcH2Server) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()  # a partial frame
        self.need = 0           # bytes buf must reach before it holds a whole frame
        self.preface_seen = False
        self.decoder = HeaderDecoder()
        self.streams: dict[int, Stream] = {}
        self.last_stream_id = 0
        self.peer_initial_window = DEFAULT_WINDOW
        self.peer_max_frame = 16_384
        self.conn_send_window = DEFAULT_WINDOW
        self.conn_unacked = 0
        self.continuing: Stream | None = None  # stream whose header block is incomplete
        self.reset_streams: dict[int, None] = {}  # recently reset by us (ordered set)
        self.going_away = False
        self.out: list[bytes] = []

    # asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.connections.add(self)
        settings = struct.pack(">HIHI", SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW, SETTINGS_MAX_FRAME_SIZE, OUR_MAX_FRAME)
        transport.write(frame(SETTINGS, 0, 0, settings)  # type: ignore[attr-defined]
                        + frame(WINDOW_UPDATE, 0, 0, U32.pack(CONNECTION_WINDOW - DEFAULT_WINDOW)))

    def data_received(self, data: bytes) -> None:
        # Frames are handed on as memoryview slices of `data` (no copy); only a partial frame is
        # kept, in `buf`, until `need` bytes have arrived.
        if self.buf:
            self.buf += data
            if len(self.buf) < self.need:
                return
            # Hand the buffer over instead of copying it: it is never written again, so views
            # of it (frames, parts of split messages) stay valid.
            data, self.buf = self.buf, bytearray()
        try:
            pos = 0
            if not self.preface_seen:
                if len(data) < len(PREFACE):
                    self.buf += data
                    self.need = len(PREFACE)
                    return
                if data[:len(PREFACE)] != PREFACE:
                    raise ConnectionError_(PROTOCOL_ERROR, "not an HTTP/2 prior-knowledge connection")
                self.preface_seen = True
                pos = len(PREFACE)
            n = len(data)
            view = memoryview(data)
            need = 9
            while n - pos >= 9:
                hi, lo, ftype, flags, sid = FRAME_HEADER.unpack_from(data, pos)
                length = (hi << 16) | lo
                if length > OUR_MAX_FRAME:
                    raise ConnectionError_(FRAME_SIZE_ERROR, f"frame of {length} bytes")
                end = pos + 9 + length
                if end > n:
                    need = end - pos
                    break
                self._frame(ftype, flags, sid & 0x7FFFFFFF, view[pos + 9:end])
                pos = end
            if pos < n:
                self.buf += view[pos:]
                self.need = need
        except ConnectionError_ as e:
            log.warning("ext_proc connection error: %s", e)
            self.goaway(e.code, str(e))
            self.close()
            return
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        for s in list(self.streams.values()):
            self._end(s)
        self.transport = None

    # frames

    def _frame(self, ftype: int, flags: int, sid: int, payload: bytes) -> None:
        if self.continuing is not None and ftype != CONTINUATION:
            raise ConnectionError_(PROTOCOL_ERROR, "header block interrupted")
        if ftype == DATA:
            self._data(flags, sid, payload)
        elif ftype == HEADERS:
            self._headers(flags, sid, payload)
        elif ftype == CONTINUATION:
            self._continuation(flags, sid, payload)
        elif ftype == WINDOW_UPDATE:
            self._window_update(sid, payload)
        elif ftype == SETTINGS:
            self._settings(flags, sid, payload)
        elif ftype == RST_STREAM:
            s = self.streams.get(sid)
            if s is not None:
                self._end(s)
        elif ftype == PING:
            if len(payload) != 8 or sid:
                raise ConnectionError_(PROTOCOL_ERROR, "bad PING")
            if not flags & ACK:
                self.out.append(frame(PING, ACK, 0, bytes(payload)))
        elif ftype == GOAWAY:
            self.going_away = True  # the peer opens no more streams here; existing ones finish
        elif ftype == PUSH_PROMISE:
            raise ConnectionError_(PROTOCOL_ERROR, "PUSH_PROMISE from a client")
        # PRIORITY and unknown types are ignored (RFC 9113 §5.5).

    @staticmethod
    def _unpad(flags: int, payload: bytes) -> bytes:
        if not flags & PADDED:
            return payload
        if not payload or payload[0] >= len(payload):
            raise ConnectionError_(PROTOCOL_ERROR, "padding exceeds frame")
        return payload[1:len(payload) - payload[0]]

    def _data(self, flags: int, sid: int, payload: bytes) -> None:
        size = len(payload)
        self.conn_unacked += size
        if self.conn_unacked >= CONNECTION_WINDOW // 2:
            self.out.append(frame(WINDOW_UPDATE, 0, 0, U32.pack(self.conn_unacked)))
            self.conn_unacked = 0
        s = self.streams.get(sid)
        if s is None:
            if sid == 0 or sid > self.last_stream_id:
                raise ConnectionError_(PROTOCOL_ERROR, f"DATA on idle stream {sid}")
            return  # a stream we already ended: the credit above is all that matters
        data = self._unpad(flags, payload) if flags & PADDED else payload
        if not s.finished:
            s.unacked += size
            if s.unacked >= STREAM_WINDOW // 2 and not flags & END_STREAM:
                self.out.append(frame(WINDOW_UPDATE, 0, sid, U32.pack(s.unacked)))
                s.unacked = 0
            self._messages(s, data)
        if flags & END_STREAM:
            self._half_closed(s)

    def _messages(self, s: Stream, data: memoryview) -> None:
        """Cut gRPC messages out of DATA payloads; a message split across frames is collected
        in `parts` and joined once, when complete."""
        if s.parts:
            s.parts.append(data)   # a view: read buffers are never written after data_received
            s.have += len(data)
            if s.have < s.need:
                return
            data = memoryview(b"".join(s.parts))
            s.parts, s.have, s.need = [], 0, 5
        pos, n = 0, len(data)
        while n - pos >= 5:
            if data[pos]:
                self._fail(s, GRPC_UNIMPLEMENTED, "compressed messages are not supported")
                return
            end = pos + 5 + U32.unpack_from(data, pos + 1)[0]
            if end > n:
                break
            message = data[pos + 5:end]
            pos = end
            try:
                responses, done = s.handler.on_message(message)  # type: ignore[union-attr]
            except Exception:  # a handler bug ends its own call, never the connection
                log.exception("ext_proc stream failed")
                self._fail(s, GRPC_INTERNAL, "endpoint picker error")
                return
            if responses:
                self._send_messages(s, responses)
            if done:
                self._finish(s, OK_TRAILERS)
                return
        if pos < n:
            rest = data[pos:]
            s.parts, s.have = [rest], len(rest)
            s.need = 5 + U32.unpack_from(rest, 1)[0] if len(rest) >= 5 else 5

    def _headers(self, flags: int, sid: int, payload: bytes) -> None:
        if sid == 0:
            raise ConnectionError_(PROTOCOL_ERROR, "HEADERS on stream 0")
        block = bytes(self._unpad(flags, payload))
        if flags & PRIORITY_FLAG:
            block = block[5:]
        s = self.streams.get(sid)
        if s is None:
            if not sid & 1:
                raise ConnectionError_(PROTOCOL_ERROR, f"stream {sid} cannot be opened")
            s = Stream(sid, self.peer_initial_window)
            if sid in self.reset_streams:
                # Trailers racing our RST_STREAM: decode (the HPACK state must stay in step) and
                # drop, on a stream object that is never registered.
                s.finished = True
            elif sid <= self.last_stream_id:
                raise ConnectionError_(PROTOCOL_ERROR, f"stream {sid} cannot be opened")
            else:
                self.last_stream_id = sid
                self.streams[sid] = s
        if flags & END_HEADERS:
            self._header_block(s, block, bool(flags & END_STREAM))
        else:
            s.block, s.block_ends_stream = block, bool(flags & END_STREAM)
            self.continuing = s

    def _continuation(self, flags: int, sid: int, payload: bytes) -> None:
        s = self.continuing
        if s is None or s.id != sid:
            raise ConnectionError_(PROTOCOL_ERROR, "unexpected CONTINUATION")
        s.block += bytes(payload)
        if len(s.block) > MAX_HEADER_BLOCK:  # a CONTINUATION flood must not grow memory without bound
            raise ConnectionError_(ENHANCE_YOUR_CALM, f"header block over {MAX_HEADER_BLOCK} bytes")
        if flags & END_HEADERS:
            self.continuing = None
            block, s.block = s.block, b""
            self._header_block(s, block, s.block_ends_stream)

    def _header_block(self, s: Stream, block: bytes, end_stream: bool) -> None:
        try:
            headers = self.decoder.decode(block)  # always: keeps the HPACK table in step
        except HPACKError as e:
            raise ConnectionError_(COMPRESSION_ERROR, f"HPACK: {e}") from None
        if s.handler is None and not s.finished:  # request headers (a later block is trailers)
            if self.going_away:
                self.out.append(frame(RST_STREAM, 0, s.id, U32.pack(REFUSED_STREAM)))
                self._end(s)
                return
            path = next((v for k, v in headers if k == b":path"), b"").decode("utf-8", "replace")
            handler = self.server.open_stream(path)
            if handler is None:
                self._fail(s, GRPC_UNIMPLEMENTED, f"unknown method {path}")
            else:
                s.handler = handler
                bind = getattr(handler, "bind", None)
                if bind is not None:
                    bind(lambda responses, done, s=s: self.send_later(s, responses, done))
        if end_stream:
            self._half_closed(s)

    def _window_update(self, sid: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise ConnectionError_(FRAME_SIZE_ERROR, "bad WINDOW_UPDATE")
        inc = U32.unpack(payload)[0] & 0x7FFFFFFF
        if inc == 0:
            raise ConnectionError_(PROTOCOL_ERROR, "WINDOW_UPDATE of 0")
        if sid == 0:
            self.conn_send_window += inc
            if self.conn_send_window > MAX_WINDOW:
                raise ConnectionError_(FLOW_CONTROL_ERROR, "connection window overflow")
            for s in list(self.streams.values()):
                if s.pending or s.trailers is not None:
                    self._drain(s)
            return
        s = self.streams.get(sid)
        if s is not None:
            s.send_window += inc
            if s.send_window > MAX_WINDOW:
                raise ConnectionError_(FLOW_CONTROL_ERROR, f"stream {sid} window overflow")
            self._drain(s)

    def _settings(self, flags: int, sid: int, payload: bytes) -> None:
        if sid or len(payload) % 6:
            raise ConnectionError_(PROTOCOL_ERROR, "bad SETTINGS")
        if flags & ACK:
            return
        for i in range(0, len(payload), 6):
            key, value = struct.unpack_from(">HI", payload, i)
            if key == SETTINGS_INITIAL_WINDOW_SIZE:
                if value > MAX_WINDOW:
                    raise ConnectionError_(FLOW_CONTROL_ERROR, "initial window too large")
                delta = value - self.peer_initial_window
                self.peer_initial_window = value
                for s in self.streams.values():
                    s.send_window += delta
            elif key == SETTINGS_MAX_FRAME_SIZE:
                if not 16_384 <= value < 1 << 24:
                    raise ConnectionError_(PROTOCOL_ERROR, "bad max frame size")
                self.peer_max_frame = value
        self.out.append(frame(SETTINGS, ACK, 0))
        for s in list(self.streams.values()):
            if s.pending:
                self._drain(s)
