"""gRPC requests: the model where each runtime's API puts it, read and rewritten without .proto files.

- Caikit (`/caikit.runtime.*`): the `mm-model-id` request header.
- TGIS (`/fmaas.GenerationService/*`): `model_id`, field 1 of every request message.
- KServe v2 (`/inference.GRPCInferenceService/Model*`): `model_name` (ModelInfer) or `name`
  (ModelReady, ModelMetadata), field 1 of the request message.
- anything else: the `mm-model-id` header when present; the body stays opaque.

A gRPC request body is length-prefixed messages (a compressed flag byte, a 4-byte big-endian
length, the protobuf message); unary and server-streaming calls send exactly one. The model field
is found by walking the protobuf wire format of that message (tag varints, skipping other
fields), so the picker needs no generated code. A compressed message (flag 1) is left opaque:
its model is not read, and a traffic split cannot rewrite it (the request is served as sent).
Rewriting replaces field 1 and corrects the message length; every other byte is kept.
"""

from __future__ import annotations

MODEL_HEADER = "mm-model-id"
_FIELD_1_PREFIXES = ("/fmaas.GenerationService/", "/inference.GRPCInferenceService/Model")


class WireError(ValueError):
    """Not a well-formed gRPC frame or protobuf message."""


def model_in_body(path: str) -> bool:
    """Whether the API carries the model in field 1 of the request message."""
    p = path.split("?", 1)[0]
    return p.startswith(_FIELD_1_PREFIXES)


def _varint(buf: bytes | memoryview, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise WireError("truncated varint")
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _fields(msg: bytes) -> list[tuple[int, int, int, int]]:
    """(field number, wire type, start, end) of each top-level field, in order."""
    out = []
    i, n = 0, len(msg)
    while i < n:
        start = i
        key, i = _varint(msg, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, i = _varint(msg, i)
        elif wire == 1:
            i += 8
        elif wire == 2:
            size, i = _varint(msg, i)
            i += size
        elif wire == 5:
            i += 4
        else:
            raise WireError(f"unsupported wire type {wire}")
        if i > n or number == 0:
            raise WireError("truncated field")
        out.append((number, wire, start, i))
    return out


def _first_message(body: bytes) -> tuple[int, bytes, bytes]:
    """(compressed flag, message, the bytes after it) of the first length-prefixed message."""
    if len(body) < 5:
        raise WireError("shorter than a gRPC message prefix")
    size = int.from_bytes(body[1:5], "big")
    if len(body) < 5 + size:
        raise WireError("truncated gRPC message")
    return body[0], body[5:5 + size], body[5 + size:]


def read_model(body: bytes) -> str | None:
    """Field 1 (a string) of the first message; None when absent, empty or compressed."""
    flag, msg, _ = _first_message(body)
    if flag:
        return None
    value = None
    for number, wire, start, end in _fields(msg):
        if number == 1 and wire == 2:
            _, data_start = _varint(msg, start + 1)
            value = msg[data_start:end]
    if not value:
        return None
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise WireError("field 1 is not UTF-8 text") from None


def replace_model(body: bytes, model: str) -> bytes:
    """The body with field 1 of its first message set to `model` (every earlier value removed)."""
    flag, msg, rest = _first_message(body)
    if flag:
        return body
    kept = b"".join(msg[s:e] for number, _, s, e in _fields(msg) if number != 1)
    data = model.encode("utf-8")
    new = b"\x0a" + _encode_varint(len(data)) + data + kept
    return bytes([flag]) + len(new).to_bytes(4, "big") + new + rest


HTTP_TO_GRPC = {400: 3, 401: 16, 403: 7, 404: 5, 413: 8, 429: 8, 500: 13, 503: 14}
"""A rejection's gRPC status (INVALID_ARGUMENT, UNAUTHENTICATED, PERMISSION_DENIED, NOT_FOUND,
RESOURCE_EXHAUSTED, INTERNAL, UNAVAILABLE) for gRPC clients; Envoy answers them trailers-only."""


def grpc_status(http_status: int) -> int:
    return HTTP_TO_GRPC.get(http_status, 2)  # UNKNOWN
