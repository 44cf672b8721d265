"""HTTP/2 (RFC 9113) and gRPC wire constants, and the encoders grpc_h2 sends with.

Our own header blocks are HPACK literals without indexing (RFC 7541 §6.2.2): they never touch the
dynamic table, so a block built once here is valid on every connection. `ConnectionError_` is
raised while reading a frame that breaks the protocol; the connection answers it with GOAWAY.
"""

from __future__ import annotations

import struct

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20

SETTINGS_INITIAL_WINDOW_SIZE, SETTINGS_MAX_FRAME_SIZE = 0x4, 0x5
NO_ERROR, PROTOCOL_ERROR, FLOW_CONTROL_ERROR, FRAME_SIZE_ERROR, REFUSED_STREAM, COMPRESSION_ERROR = 0x0, 0x1, 0x3, 0x6, 0x7, 0x9
ENHANCE_YOUR_CALM = 0xB

GRPC_UNIMPLEMENTED, GRPC_INTERNAL, GRPC_UNAVAILABLE = 12, 13, 14

DEFAULT_WINDOW = 65_535
MAX_WINDOW = 2**31 - 1

FRAME_HEADER = struct.Struct(">BHBBI")  # length as 1+2 bytes, type, flags, stream id
U32 = struct.Struct(">I")


class ConnectionError_(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def frame(ftype: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    n = len(payload)
    return FRAME_HEADER.pack(n >> 16, n & 0xFFFF, ftype, flags, stream_id) + payload


def _hpack_int(value: int, prefix_bits: int) -> bytes:
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([value])
    out = bytearray([limit])
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _literal(name: bytes, value: bytes) -> bytes:
    """HPACK literal header field without indexing, new name: never touches the dynamic table,
    so a block built once stays valid on every connection."""
    return b"\x00" + _hpack_int(len(name), 7) + name + _hpack_int(len(value), 7) + value


_STATUS_200 = b"\x88"  # indexed :status 200 from the static table
RESPONSE_HEADERS = _STATUS_200 + _literal(b"content-type", b"application/grpc")
OK_TRAILERS = _literal(b"grpc-status", b"0")


def status_block(code: int, message: str) -> bytes:
    # grpc-message is percent-encoded (gRPC over HTTP/2: bytes outside 0x20-0x7E, and "%").
    text = "".join(c if " " <= c <= "~" and c != "%" else "".join(f"%{b:02X}" for b in c.encode()) for c in message)
    return _literal(b"grpc-status", str(code).encode()) + _literal(b"grpc-message", text.encode("ascii"))
