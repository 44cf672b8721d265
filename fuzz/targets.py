"""Fuzz targets: what a hostile or broken peer can feed the picker, and what must hold.

Each target takes one input (bytes from the fuzzer) and raises only on a bug:

* ``h2`` - the gRPC/HTTP2 transport (grpc_h2: frame parsing, flow control, HPACK through the
  connection) fed arbitrary bytes after the connection preface, in arbitrary splits. A protocol
  violation must end as a GOAWAY/close, never as an exception out of `data_received`; every
  stream handler that was opened is closed exactly once when the connection goes.
* ``hpack`` - the HPACK decoder alone: only `HPACKError` on bad input, and decoding a block
  twice against the same table gives the same headers (its block cache).
* ``request`` - the request path the picker applies to every client request: path, headers and
  body through `Director.route` (parsers, normal-form check, identity, deployed-model lookup,
  rewrite, admission): only `RequestError` (a 4xx/5xx answer) on bad input; a rewritten body is
  valid JSON naming the target; and the response-side model restore over arbitrary chunks.
* ``metrics`` - the Prometheus text parser for model-server metrics: never raises, and yields
  finite numbers.

`seeds(name)` gives a few valid inputs per target to start from (generated, nothing committed).
"""

from __future__ import annotations

import math
import struct
from typing import Callable

import orjson

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


# -- h2 --------------------------------------------------------------------------------------------
class _Transport:
    def __init__(self) -> None:
        self.out: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.out.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default=None):
        return default


class _Handler:
    """Answers each message with its own bytes; finishes on a message starting with 0xff."""

    live: list["_Handler"] = []

    def __init__(self) -> None:
        self.closes = 0
        _Handler.live.append(self)

    def on_message(self, message: memoryview) -> tuple[list[bytes], bool]:
        data = bytes(message)
        return [data[:64]], data[:1] == b"\xff"

    def close(self) -> None:
        self.closes += 1


def h2(data: bytes) -> None:
    from endpoint_picker.grpc_h2 import GrpcH2Connection, GrpcH2Server

    _Handler.live = []
    server = GrpcH2Server(lambda path: _Handler() if path.endswith("/Process") else None)
    conn = GrpcH2Connection(server)
    transport = _Transport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    split = data[0] if data else 0
    body = data[1:]
    conn.data_received(PREFACE)
    step = max(1, split * 7)
    for i in range(0, len(body), step):
        if transport.closed:
            break
        conn.data_received(body[i:i + step])
    conn.connection_lost(None)
    for h in _Handler.live:
        if h.closes != 1:
            raise AssertionError(f"a stream handler was closed {h.closes} times")
    if conn.streams:
        raise AssertionError("streams left after connection_lost")


def _frame(ftype: int, flags: int, sid: int, payload: bytes) -> bytes:
    n = len(payload)
    return struct.pack(">BHBBI", n >> 16, n & 0xFFFF, ftype, flags, sid) + payload


def _h2_seeds() -> list[bytes]:
    from hpack import Encoder

    enc = Encoder()
    headers = [(":method", "POST"), (":scheme", "http"), (":path", "/envoy.service.ext_proc.v3.ExternalProcessor/Process"),
               (":authority", "picker"), ("content-type", "application/grpc"), ("te", "trailers")]
    block = enc.encode(headers)
    msg = b"\x00" + struct.pack(">I", 5) + b"hello"
    settings = _frame(4, 0, 0, struct.pack(">HI", 4, 1 << 20))
    stream = _frame(1, 0x4, 1, block) + _frame(0, 0, 1, msg) + _frame(0, 0x1, 1, b"\xff" + msg[1:])
    cont = _frame(1, 0, 3, block[:3]) + _frame(9, 0x4, 3, block[3:]) + _frame(8, 0, 3, struct.pack(">I", 1000))
    return [b"\x01" + settings + stream, b"\x03" + settings + cont + _frame(3, 0, 3, struct.pack(">I", 8)),
            b"\x00" + _frame(6, 0, 0, b"12345678") + _frame(7, 0, 0, struct.pack(">II", 0, 0))]


# -- hpack -----------------------------------------------------------------------------------------
def hpack(data: bytes) -> None:
    from hpack.exceptions import HPACKError

    from endpoint_picker.hpack_decoder import HeaderDecoder

    d = HeaderDecoder()
    try:
        first = d.decode(data)
    except HPACKError:
        return
    if d.version == 0 and d.decode(data) != first:
        raise AssertionError("the same block against the same table decoded differently")


def _hpack_seeds() -> list[bytes]:
    from hpack import Encoder

    enc = Encoder()
    return [enc.encode([(":path", "/v1/chat/completions"), ("x-user-id", "a" * 40)]),
            enc.encode([(":method", "GET"), ("custom", "value")], huffman=False), b"\x3f\xe1\x1f"]


# -- request ---------------------------------------------------------------------------------------
_DIRECTOR = None


def _director():
    global _DIRECTOR
    if _DIRECTOR is None:
        from endpoint_picker.config import load_config
        from endpoint_picker.datastore import Datastore, Endpoint, parse_objective, parse_rewrite
        from endpoint_picker.director import Director
        from endpoint_picker.scheduling.registry import build_registry
        from endpoint_picker.selfmetrics import SelfMetrics

        cfg = load_config({
            "models": {"served": ["m", "m-v2", "s"], "deployed": {"current": "m", "challenger": "m-v2"}},
            "rate_limits": [{"key": "user", "calls": 1000000, "renewal_period": "second", "model": "m"}],
            "auth": {"client_address_hop": 2},
        })
        store = Datastore()
        store.set_endpoints([Endpoint(f"p{i}", "default", f"10.0.0.{i}", 8000) for i in range(3)])
        store.set_rewrites(parse_rewrite({"metadata": {"name": "m"}, "spec": {"rules": [{
            "matches": [{"model": {"type": "Exact", "value": "m"}}],
            "targets": [{"modelRewrite": "m", "weight": 90}, {"modelRewrite": "m-v2", "weight": 10}]}]}}))
        store.set_objectives([parse_objective({"metadata": {"name": "m"}, "spec": {"priority": 0}}),
                              parse_objective({"metadata": {"name": "s"}, "spec": {"priority": -1}})])
        store.synced = True
        _DIRECTOR = Director(cfg, store, build_registry().build(cfg.scheduling), SelfMetrics())
    return _DIRECTOR


_HEADER_NAMES = ("content-type", "x-deployed-model-id", "x-llm-d-model-name-rewrite", "x-forwarded-for",
                 "x-gateway-inference-objective", "x-request-id", "mm-model-id", "authorization")
_PATHS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses", "/v1/models",
          "/v2/models/m/infer", "/v2/models/m/versions/1/infer", "/api/v1/task/text-generation",
          "/invoke/v1/chat/completions", "/served-models/current/invocations", "/fmaas.GenerationService/Generate")
_VALUES = ("m", "m-v2", "s", "current", "challenger", "unknown", "application/json", "application/grpc",
           "1.2.3.4, 10.0.0.9", "Bearer k", "")
_MODELS = ("m", "m-v2", "s", "unknown", "", None, 7, ["m"])


def _text(fdp) -> str:
    return fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 64))


def _pick(fdp, options):
    return options[fdp.ConsumeIntInRange(0, len(options) - 1)]


def _json_body(fdp) -> bytes:
    """A request body shaped like the APIs the picker parses, with fuzzed contents."""
    doc: dict = {}
    model = _pick(fdp, _MODELS)
    if model is not None:
        doc[_pick(fdp, ("model", "model_id"))] = model
    kind = fdp.ConsumeIntInRange(0, 4)
    if kind == 0:
        doc["messages"] = [{"role": _pick(fdp, ("user", "system", 3)), "content": _pick(fdp, (_text(fdp), [{"type": "text", "text": _text(fdp)}], None))}
                           for _ in range(fdp.ConsumeIntInRange(0, 3))]
    elif kind == 1:
        doc["prompt"] = _pick(fdp, (_text(fdp), [_text(fdp), _text(fdp)], 5))
    elif kind == 2:
        doc["input"] = _pick(fdp, (_text(fdp), [_text(fdp)], {"a": _text(fdp)}))
    elif kind == 3:
        doc["inputs"] = _pick(fdp, (_text(fdp), [{"name": "x", "data": [1]}]))
    if fdp.ConsumeBool():
        doc["stream"] = _pick(fdp, (True, False, "yes"))
    return orjson.dumps(doc)


def request(data: bytes) -> None:
    import atheris

    from endpoint_picker.errors import RequestError
    from endpoint_picker.restore import ModelRestorer

    fdp = atheris.FuzzedDataProvider(data)
    path = _pick(fdp, _PATHS) if fdp.ConsumeBool() else fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 80))
    headers = {name: (_pick(fdp, _VALUES) if fdp.ConsumeBool() else _text(fdp))
               for name in _HEADER_NAMES if fdp.ConsumeBool()}
    body = _json_body(fdp) if fdp.ConsumeBool() else fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 2048))
    d = _director()
    try:
        routed = d.route(path, headers, body)
    except RequestError as e:
        if not 400 <= e.status < 600 or not e.reason:
            raise AssertionError(f"a rejection without a status/reason: {e.status} {e.reason!r}") from None
        return
    if routed.rewritten and routed.body is not body and routed.path is None \
            and not headers.get("content-type", "").startswith("application/grpc"):
        parsed = orjson.loads(routed.body)
        if routed.target_model not in (parsed.get("model"), parsed.get("model_id")):
            raise AssertionError("the rewritten body does not name the target model")
    d.release_request(routed)
    restorer = ModelRestorer(routed.target_model or "m-v2", routed.client_model or "m")
    rest = fdp.ConsumeBytes(fdp.remaining_bytes())
    cut = len(rest) // 2
    restorer.feed(rest[:cut], False)
    restorer.feed(rest[cut:], True)


def _request_seeds() -> list[bytes]:
    chat = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True})
    return [b"\x14/v1/chat/completions\x01\x10application/json" + bytes([len(chat) % 256]) + chat,
            b"\x0b/v2/models/m/infer" + orjson.dumps({"inputs": [{"name": "x", "data": [1]}]}),
            b'{"model": "m", "prompt": "a"}']


# -- metrics ---------------------------------------------------------------------------------------
def metrics(data: bytes) -> None:
    from endpoint_picker.scrape import parse_metrics

    m = parse_metrics(data)
    for name in ("waiting", "running", "kv_usage"):
        value = getattr(m, name)
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise AssertionError(f"{name} = {value!r}")


def _metrics_seeds() -> list[bytes]:
    return [
        b'# HELP vllm:num_requests_running x\n# TYPE vllm:num_requests_running gauge\n'
        b'vllm:num_requests_running{model_name="m",engine="0"} 1.0\n'
        b'vllm:num_requests_waiting{model_name="m"} 3\nvllm:kv_cache_usage_perc{model_name="m"} 0.25\n'
        b'vllm:cache_config_info{block_size="16",num_gpu_blocks="2048"} 1.0\n'
        b'vllm:lora_requests_info{max_lora="2",running_lora_adapters="a,b",waiting_lora_adapters="c"} 1.7e9\n',
        b'vllm:num_requests_waiting{a="\\"x\\\\"} 2\nvllm:gpu_cache_usage_perc 0.5\n',
    ]


TARGETS: dict[str, tuple[Callable[[bytes], None], Callable[[], list[bytes]]]] = {
    "h2": (h2, _h2_seeds),
    "hpack": (hpack, _hpack_seeds),
    "request": (request, _request_seeds),
    "metrics": (metrics, _metrics_seeds),
}


def seeds(name: str) -> list[bytes]:
    return TARGETS[name][1]()
