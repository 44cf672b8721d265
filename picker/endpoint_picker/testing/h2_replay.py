"""ext_proc traffic replayed into the picker's HTTP/2 transport in process: CPU per request.

    uv run python -m endpoint_picker.testing.h2_replay [--bytes 220000] [--requests 300] [--profile]

Envoy's side of an ext_proc stream (HEADERS, then DATA frames carrying ProcessingRequest
messages: request headers, the body in 16 KB chunks, the response body) is built once and fed to
`grpc_h2.GrpcH2Connection.data_received` in 64 KB reads, for the real picker (the shipped config,
16 endpoints) and for the do-nothing processor (`null_processor.py`). No sockets and no event
loop: what is measured is the thread CPU the transport, the protocol state machine and (for the
picker) the decision cost per request, so the two can be compared exactly and on a busy machine.
The real processes (syscalls, the event loop, Envoy) are measured by `benchmarks/ overhead`.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import struct
import time
from typing import Callable

import orjson
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb
from hpack import Encoder

from .. import grpc_h2_wire as W
from ..config import load_config
from ..datastore import Datastore, Endpoint
from ..director import Director
from ..grpc_h2 import GrpcH2Connection, GrpcH2Server
from ..scheduling.registry import build_registry
from ..selfmetrics import SelfMetrics
from ..server import ExternalProcessor
from .null_processor import NullStream

METHOD = "/envoy.service.ext_proc.v3.ExternalProcessor/Process"
BIG_WINDOW = 2**31 - 1


class _Sink:
    """A transport that only counts what the server writes."""

    def __init__(self) -> None:
        self.bytes = 0

    def write(self, data: bytes) -> None:
        self.bytes += len(data)

    def close(self) -> None:
        pass

    def get_extra_info(self, *_: object) -> None:
        return None


def picker_opener(endpoints: int = 16) -> Callable[[str], object]:
    cfg = load_config({})
    store = Datastore()
    store.set_endpoints([Endpoint(f"p{i}", "default", f"10.0.0.{i + 1}", 8000) for i in range(endpoints)])
    for m in store.metrics.values():
        m.waiting, m.kv_usage, m.block_size, m.num_gpu_blocks = 1, 0.3, 16, 20000
        m.updated_at = float("inf")   # always fresh: no scraper here
    director = Director(cfg, store, build_registry().build(cfg.scheduling), SelfMetrics(), clock=lambda: 0.0)
    return ExternalProcessor(director, cfg.ext_proc).open_stream


def null_opener() -> Callable[[str], object]:
    return lambda path: NullStream("10.0.0.1:8000", True) if path == METHOD else None


def _message(r: pb.ProcessingRequest) -> bytes:
    b = r.SerializeToString()
    return b"\x00" + struct.pack(">I", len(b)) + b


def envoy_stream(prompt_bytes: int, chunk: int = 16384) -> bytes:
    """The gRPC messages Envoy sends for one request (headers, body chunks, a small response)."""
    prompt = ("hello world " * (prompt_bytes // 12 + 1))[:prompt_bytes]
    body = orjson.dumps({"model": "m", "prompt": prompt, "max_tokens": 16, "stream": False})
    head = pb.ProcessingRequest()
    for k, v in ((":method", "POST"), (":path", "/v1/completions"), (":authority", "gw"),
                 ("content-type", "application/json"), ("x-request-id", "r")):
        h = head.request_headers.headers.headers.add()
        h.key, h.raw_value = k, v.encode()
    out = [_message(head)]
    for i in range(0, len(body), chunk):
        r = pb.ProcessingRequest()
        r.request_body.body = body[i:i + chunk]
        r.request_body.end_of_stream = i + chunk >= len(body)
        out.append(_message(r))
    resp = pb.ProcessingRequest()
    resp.response_body.body = b'{"id":"x","object":"text_completion","model":"m","choices":[{"text":"ok"}]}'
    resp.response_body.end_of_stream = True
    out.append(_message(resp))
    return b"".join(out)


def replay(opener: Callable[[str], object], prompt_bytes: int, requests: int, profile: bool = False) -> dict[str, float]:
    conn = GrpcH2Connection(GrpcH2Server(opener))
    sink = _Sink()
    conn.connection_made(sink)  # type: ignore[arg-type]
    conn.data_received(W.PREFACE + W.frame(W.SETTINGS, 0, 0, struct.pack(">HI", W.SETTINGS_INITIAL_WINDOW_SIZE, BIG_WINDOW))
                       + W.frame(W.WINDOW_UPDATE, 0, 0, struct.pack(">I", BIG_WINDOW - W.DEFAULT_WINDOW)))
    header_block = Encoder().encode([(":method", "POST"), (":scheme", "http"), (":path", METHOD), (":authority", "epp"),
                                     ("content-type", "application/grpc"), ("te", "trailers")])
    data = envoy_stream(prompt_bytes)
    streams = []
    for n in range(requests + 20):   # built ahead: only the server's work is timed
        sid = 2 * n + 1
        wire = W.frame(W.HEADERS, W.END_HEADERS, sid, header_block) + b"".join(
            W.frame(W.DATA, W.END_STREAM if i + 16384 >= len(data) else 0, sid, data[i:i + 16384])
            for i in range(0, len(data), 16384))
        streams.append([wire[i:i + 65536] for i in range(0, len(wire), 65536)])
    for reads in streams[:20]:
        for r in reads:
            conn.data_received(r)
    before = sink.bytes
    prof = cProfile.Profile(time.thread_time) if profile else None
    if prof:
        prof.enable()
    c0 = time.thread_time()
    for reads in streams[20:]:
        for r in reads:
            conn.data_received(r)
    cpu = time.thread_time() - c0
    if prof:
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(15)
    return {"cpu_s_per_request": cpu / requests, "bytes_out_per_request": (sink.bytes - before) / requests}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bytes", type=int, default=220_000, help="prompt size (default 220000)")
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--profile", action="store_true", help="print the picker's top functions by CPU")
    a = ap.parse_args()
    null = replay(null_opener(), a.bytes, a.requests)
    picker = replay(picker_opener(), a.bytes, a.requests, a.profile)
    print(f"{a.bytes}-byte prompts, {a.requests} requests: ext_proc CPU per request picker "
          f"{picker['cpu_s_per_request'] * 1e3:.3f} ms, do-nothing processor {null['cpu_s_per_request'] * 1e3:.3f} ms, "
          f"picker's own {(picker['cpu_s_per_request'] - null['cpu_s_per_request']) * 1e3:.3f} ms "
          f"({picker['bytes_out_per_request']:.0f} / {null['bytes_out_per_request']:.0f} bytes out per request)")


if __name__ == "__main__":
    main()
