"""One gRPC call on a grpc_h2 connection: the handler interface the server calls into
(`StreamHandler`) and the transport's per-stream state (`Stream`)."""

from __future__ import annotations

from typing import Callable, Protocol


class StreamHandler(Protocol):
    """One RPC. `on_message` gets each request message and returns the serialized responses plus
    whether the call is finished (the transport then sends OK trailers and stops reading)."""

    def on_message(self, message: memoryview) -> tuple[list[bytes], bool]:
        """`message` is only valid during the call (a view of the connection's read buffer)."""
        ...

    def close(self) -> None:
        """The stream ended, normally or not: release whatever the call holds. Called once."""

    def settled(self) -> bool:
        """Optional. True when ending the call now with OK status loses nothing the client still
        needs; a stopping server ends such calls at once instead of waiting for them."""

    def bind(self, send: Callable[[list[bytes], bool], None]) -> None:
        """Optional. Called once when the stream opens with `send(responses, done)`, which sends
        responses later, outside any `on_message` call (a call that answers a message after the
        fact, such as a request held in a queue). Ignored once the stream has ended."""

    def pending(self) -> bool:
        """Optional. True while a late answer is owed: the call stays open past the client's
        half-close until it has gone out."""


class Stream:
    __slots__ = ("id", "handler", "parts", "have", "need", "send_window", "pending", "trailers", "headers_sent",
                 "finished", "remote_closed", "unacked", "block", "block_ends_stream")

    def __init__(self, stream_id: int, send_window: int) -> None:
        self.id = stream_id
        self.handler: StreamHandler | None = None
        self.parts: list[bytes] = []   # a gRPC message split across DATA frames
        self.have = 0                  # bytes in parts
        self.need = 5                  # bytes the message needs (5 = its prefix, still unknown)
        self.send_window = send_window
        self.pending = bytearray()     # DATA payload waiting for flow-control credit
        self.trailers: bytes | None = None  # sent once pending drains
        self.headers_sent = False
        self.finished = False          # our side ended (trailers queued or sent)
        self.remote_closed = False     # the client sent END_STREAM
        self.unacked = 0               # received bytes not yet returned with WINDOW_UPDATE
        self.block = b""               # header block awaiting CONTINUATION
        self.block_ends_stream = False


def owes(s: Stream) -> bool:
    pending = getattr(s.handler, "pending", None)
    return pending is not None and pending()
