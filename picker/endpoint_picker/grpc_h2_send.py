"""The sending half of a grpc_h2 connection: response HEADERS and DATA under both flow-control
windows (RFC 9113 §6.9), trailers and trailers-only errors, ending and forgetting streams, GOAWAY.

`SendSide` is a base class of `grpc_h2.GrpcH2Connection`, which owns the state it works on and
does the reading; everything queued here leaves in one `write` per socket read (`_flush`).
"""

from __future__ import annotations

import asyncio
import logging
import struct

from .grpc_h2_stream import Stream, owes
from .grpc_h2_wire import (DATA, END_HEADERS, END_STREAM, FRAME_HEADER, GOAWAY, GRPC_INTERNAL, HEADERS, NO_ERROR,
                           OK_TRAILERS, RESPONSE_HEADERS, RST_STREAM, U32, frame, status_block)

log = logging.getLogger(__name__)


class SendSide:
    """Output queue and flow-control accounting of one connection (state set by GrpcH2Connection)."""

    transport: asyncio.Transport | None
    out: list[bytes]
    streams: dict[int, Stream]
    reset_streams: dict[int, None]
    conn_send_window: int
    peer_max_frame: int
    last_stream_id: int
    going_away: bool

    def _send_messages(self, s: Stream, messages: list[bytes]) -> None:
        out = self.out
        if not s.headers_sent:
            s.headers_sent = True
            out.append(frame(HEADERS, END_HEADERS, s.id, RESPONSE_HEADERS))
        parts = []
        for m in messages:
            parts.append(b"\x00" + U32.pack(len(m)))
            parts.append(m)
        data = b"".join(parts)
        n = len(data)
        if not s.pending and n <= s.send_window and n <= self.conn_send_window:
            # The common case: frames cut straight from `data` (a 62 KB body chunk is 4 frames),
            # no detour through `pending`; header and payload go to `out` separately, so the
            # payload is copied once, by the join in _flush.
            sid, step = s.id, self.peer_max_frame
            if n <= step:
                out.append(FRAME_HEADER.pack(n >> 16, n & 0xFFFF, DATA, 0, sid))
                out.append(data)
            else:
                view = memoryview(data)
                for start in range(0, n, step):
                    chunk = view[start:start + step]
                    size = len(chunk)
                    out.append(FRAME_HEADER.pack(size >> 16, size & 0xFFFF, DATA, 0, sid))
                    out.append(chunk)
            s.send_window -= n
            self.conn_send_window -= n
            return
        s.pending += data
        self._drain(s)

    def _drain(self, s: Stream) -> None:
        """Send as much pending DATA as both windows allow, then the trailers once it is all out."""
        pending = s.pending
        if pending:
            budget = min(len(pending), s.send_window, self.conn_send_window)
            if budget > 0:
                step = self.peer_max_frame
                out = self.out
                sid = s.id
                for start in range(0, budget, step):
                    out.append(frame(DATA, 0, sid, bytes(pending[start:min(start + step, budget)])))
                del pending[:budget]
                s.send_window -= budget
                self.conn_send_window -= budget
        if not pending and s.trailers is not None:
            self.out.append(frame(HEADERS, END_HEADERS | END_STREAM, s.id, s.trailers))
            s.trailers = None
            if not s.remote_closed:
                # We are done before the client: tell it to stop sending (gRPC servers do this).
                self.out.append(frame(RST_STREAM, 0, s.id, U32.pack(NO_ERROR)))
                reset = self.reset_streams
                reset[s.id] = None
                if len(reset) > 1024:  # frames racing a reset arrive within a round trip
                    del reset[next(iter(reset))]
            self._forget(s)

    def _finish(self, s: Stream, trailers: bytes) -> None:
        if s.finished:
            return
        s.finished = True
        if not s.headers_sent:  # trailers-only response
            s.headers_sent = True
            trailers = RESPONSE_HEADERS + trailers
        s.trailers = trailers
        self._drain(s)

    def _fail(self, s: Stream, code: int, message: str) -> None:
        self._finish(s, status_block(code, message))

    def _half_closed(self, s: Stream) -> None:
        """The client finished sending: the call is over (ext_proc answers every message as it
        comes, so there is nothing left to produce), unless the handler still owes a late answer
        (`pending`), which ends the call when it goes out (send_later)."""
        s.remote_closed = True
        if s.parts and not s.finished:
            self._fail(s, GRPC_INTERNAL, "truncated message")
        if owes(s):
            return
        self._finish(s, OK_TRAILERS)

    def _forget(self, s: Stream) -> None:
        self.streams.pop(s.id, None)
        h, s.handler = s.handler, None
        if h is not None:
            try:
                h.close()
            except Exception:  # one handler's bug must not leave the others open
                log.exception("ext_proc stream close failed")

    def _end(self, s: Stream) -> None:
        """Reset or lost: drop the stream and close its handler."""
        s.finished = True
        s.pending.clear()
        s.trailers = None
        self._forget(s)

    def _flush(self) -> None:
        if self.out and self.transport is not None:
            out, self.out = self.out, []
            self.transport.write(b"".join(out))

    def send_later(self, s: Stream, responses: list[bytes], done: bool) -> None:
        """Responses produced outside `data_received` (StreamHandler.bind)."""
        if s.finished or self.streams.get(s.id) is not s:
            return
        if responses:
            self._send_messages(s, responses)
        if done or (s.remote_closed and not owes(s)):
            self._finish(s, OK_TRAILERS)
        self._flush()

    def end_settled(self) -> None:
        """End every stream whose handler says it is settled with OK trailers (see stop)."""
        for s in list(self.streams.values()):
            settled = getattr(s.handler, "settled", None)
            if not s.finished and settled is not None and settled():
                self._finish(s, OK_TRAILERS)
        self._flush()

    def goaway(self, code: int, debug: str = "") -> None:
        if self.transport is None:
            return
        self.going_away = True
        self.out.append(frame(GOAWAY, 0, 0, struct.pack(">II", self.last_stream_id, code) + debug.encode()))
        self._flush()

    def close(self) -> None:
        """Close now: handlers of open streams are closed before this returns."""
        for s in list(self.streams.values()):
            self._end(s)
        if self.transport is not None:
            self._flush()
            self.transport.close()
