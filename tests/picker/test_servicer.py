"""The real ext_proc servicer over real gRPC (in-process server), without Envoy: exact message
shapes, subset hints, rewrite weights, response restore."""

from __future__ import annotations

import asyncio
import collections
import functools
from typing import Any, Awaitable, Callable

import grpc
import orjson
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as pb_grpc
from google.protobuf import struct_pb2

from endpoint_picker.config import load_config
from endpoint_picker.datastore import Datastore, Endpoint, parse_rewrite
from endpoint_picker.director import Director
from endpoint_picker.grpc_h2 import GrpcH2Server
from endpoint_picker.scheduling.registry import build_registry
from endpoint_picker.selfmetrics import SelfMetrics
from endpoint_picker.server import ExternalProcessor

EPS = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"]


def make_director(config: dict[str, Any] | None = None, rewrites: list[dict[str, Any]] = ()) -> Director:
    cfg = load_config(config or {})
    store = Datastore()
    store.set_endpoints([Endpoint(f"pod{i}", "default", a, 8000) for i, a in enumerate(EPS)])
    rules = []
    for r in rewrites:
        rules.extend(parse_rewrite(r))
    store.set_rewrites(rules)
    store.synced = True
    return Director(cfg, store, build_registry().build(cfg.scheduling), SelfMetrics())


def headers_msg(path: str, extra: dict[str, str] | None = None, eos: bool = False, subset: list[str] | None = None) -> pb.ProcessingRequest:
    hs = {":path": path, ":method": "POST", "content-type": "application/json", **(extra or {})}
    hm = base_pb2.HeaderMap(headers=[base_pb2.HeaderValue(key=k, raw_value=v.encode()) for k, v in hs.items()])
    req = pb.ProcessingRequest(request_headers=pb.HttpHeaders(headers=hm, end_of_stream=eos))
    if subset is not None:
        s = struct_pb2.Struct()
        s.fields["x-gateway-destination-endpoint-subset"].list_value.values.extend(
            [struct_pb2.Value(string_value=x) for x in subset])
        req.metadata_context.filter_metadata["envoy.lb.subset_hint"].CopyFrom(s)
    return req


def body_msgs(body: bytes, size: int) -> list[pb.ProcessingRequest]:
    parts = [body[i : i + size] for i in range(0, len(body), size)] or [b""]
    return [pb.ProcessingRequest(request_body=pb.HttpBody(body=p, end_of_stream=i == len(parts) - 1)) for i, p in enumerate(parts)]


async def _run_stream(transport: str, director: Director, messages: list[pb.ProcessingRequest],
                      mode: str = "FULL_DUPLEX_STREAMED") -> list[pb.ProcessingResponse]:
    """One ext_proc stream from a grpcio client to the servicer, served by grpcio (`Process`) or
    by grpc_h2 (`open_stream`), the picker's two `--ext-proc-transport`s."""
    cfg = load_config({"ext_proc": {"request_body_mode": mode}})
    processor = ExternalProcessor(director, cfg.ext_proc)
    if transport == "grpcio":
        server = grpc.aio.server()
        pb_grpc.add_ExternalProcessorServicer_to_server(processor, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
    else:
        server = GrpcH2Server(processor.open_stream)
        await server.start("127.0.0.1", 0)
        port = server.port
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            call = pb_grpc.ExternalProcessorStub(ch).Process(iter(messages))
            out = await asyncio.wait_for(_collect(call), 30)
    finally:
        await server.stop(0)
    assert processor.active_streams == 0  # the stream's state was closed
    return out


async def _collect(call) -> list[pb.ProcessingResponse]:
    return [r async for r in call]


@pytest.fixture(params=["grpcio", "h2"])
def run_stream(request: pytest.FixtureRequest) -> Callable[..., Awaitable[list[pb.ProcessingResponse]]]:
    """`run_stream(director, messages, mode=...)` over each ext_proc transport."""
    return functools.partial(_run_stream, request.param)


def header_value(resp: pb.ProcessingResponse, name: str) -> str | None:
    common = resp.request_headers.response if resp.HasField("request_headers") else resp.request_body.response
    for h in common.header_mutation.set_headers:
        if h.header.key == name:
            return h.header.raw_value.decode()
    return None


def test_full_duplex_defers_headers_and_rechunks_body(run_stream):
    body = orjson.dumps({"model": "m", "prompt": "z" * 200_000})
    out = asyncio.run(run_stream(make_director(), [headers_msg("/v1/completions"), *body_msgs(body, 16_384)]))
    first, chunks = out[0], out[1:]
    assert first.HasField("request_headers")
    assert first.request_headers.response.clear_route_cache
    dest = header_value(first, "x-gateway-destination-endpoint")
    assert len(dest.split(",")) == 3  # primary + 2 fallbacks (max_endpoints default 3)
    assert set(dest.split(",")) <= {f"{a}:8000" for a in EPS}
    md = first.dynamic_metadata.fields["envoy.lb"].struct_value.fields["x-gateway-destination-endpoint"].string_value
    assert md == dest
    assert header_value(first, "content-length") == str(len(body))
    sizes = [len(c.request_body.response.body_mutation.streamed_response.body) for c in chunks]
    assert max(sizes) <= 62_000 and sum(sizes) == len(body)
    eos = [c.request_body.response.body_mutation.streamed_response.end_of_stream for c in chunks]
    assert eos == [False] * (len(chunks) - 1) + [True]
    assert b"".join(c.request_body.response.body_mutation.streamed_response.body for c in chunks) == body


def test_buffered_mode_continues_headers_and_routes_on_body(run_stream):
    body = orjson.dumps({"model": "m", "prompt": "hi"})
    out = asyncio.run(run_stream(make_director(), [headers_msg("/v1/completions"), *body_msgs(body, 1 << 20)], mode="BUFFERED"))
    assert out[0] == pb.ProcessingResponse(request_headers=pb.HeadersResponse())
    assert out[1].HasField("request_body")
    assert header_value(out[1], "x-gateway-destination-endpoint")
    assert not out[1].request_body.response.HasField("body_mutation")  # body unchanged: no mutation


def test_subset_hint_restricts_candidates(run_stream):
    body = orjson.dumps({"model": "m", "prompt": "hi"})
    d = make_director()
    out = asyncio.run(run_stream(d, [headers_msg("/v1/completions", subset=["10.0.0.3:8000", "9.9.9.9:1"]), *body_msgs(body, 100)]))
    assert header_value(out[0], "x-gateway-destination-endpoint") == "10.0.0.3:8000"


def test_subset_hint_with_nothing_eligible_is_503(run_stream):
    body = orjson.dumps({"model": "m", "prompt": "hi"})
    out = asyncio.run(run_stream(make_director(), [headers_msg("/v1/completions", subset=["9.9.9.9:1"]), *body_msgs(body, 100)]))
    imm = out[0].immediate_response
    assert imm.status.code == 503
    assert {h.header.key: h.header.raw_value for h in imm.headers.set_headers}["x-llm-d-request-dropped-reason"] == b"rejected-no-endpoints"


def test_bodyless_request_is_routed_at_headers(run_stream):
    out = asyncio.run(run_stream(make_director(), [headers_msg("/v1/models", eos=True)]))
    assert len(out) == 1
    assert header_value(out[0], "x-gateway-destination-endpoint")
    assert header_value(out[0], "content-length") is None


def test_response_path_restores_model_and_releases_inflight(run_stream):
    rw = {"metadata": {"name": "rw"}, "spec": {"rules": [{"targets": [{"modelRewrite": "served", "weight": 1}]}]}}
    d = make_director(rewrites=[rw])
    body = orjson.dumps({"model": "client", "prompt": "hi", "stream": True})
    sse = b'data: {"model":"served","x":1}\n\ndata: {"model":"ser'
    rest = b'ved","x":2}\n\ndata: [DONE]\n\n'
    resp_hdrs = pb.ProcessingRequest(response_headers=pb.HttpHeaders(headers=base_pb2.HeaderMap()))
    served_md = resp_hdrs.metadata_context.filter_metadata["envoy.lb"]
    served_md.fields["x-gateway-destination-endpoint-served"].string_value = "10.0.0.2:8000"
    msgs = [headers_msg("/v1/completions"), *body_msgs(body, 100), resp_hdrs,
            pb.ProcessingRequest(response_body=pb.HttpBody(body=sse)),
            pb.ProcessingRequest(response_body=pb.HttpBody(body=rest, end_of_stream=True))]
    out = asyncio.run(run_stream(d, msgs))
    assert list(out[2].response_headers.response.header_mutation.remove_headers) == ["content-length"]
    text = b"".join(r.response_body.response.body_mutation.streamed_response.body for r in out[3:])
    assert text == (sse + rest).replace(b"served", b"client")  # the pair split across chunks is found too
    assert out[-1].response_body.response.body_mutation.streamed_response.end_of_stream
    assert all(f.requests == 0 and f.tokens == 0 for f in d.store.inflight.values())  # released at stream end


def test_kserve_v2_bodyless_request_gets_the_rewritten_path(run_stream):
    rw = {"metadata": {"name": "rw"}, "spec": {"rules": [{"matches": [{"model": {"type": "Exact", "value": "m-public"}}],
                                                          "targets": [{"modelRewrite": "m-internal", "weight": 1}]}]}}
    d = make_director(rewrites=[rw])
    out = asyncio.run(run_stream(d, [headers_msg("/v2/models/m-public/ready", {":method": "GET"}, eos=True)]))
    assert header_value(out[0], ":path") == "/v2/models/m-internal/ready"
    assert header_value(out[0], "x-gateway-destination-endpoint").split(",")[0].split(":")[0] in EPS
    # Without a rewrite the path is left alone (no :path mutation at all).
    out = asyncio.run(run_stream(d, [headers_msg("/v2/models/other/ready", {":method": "GET"}, eos=True)]))
    assert header_value(out[0], ":path") is None


@pytest.mark.parametrize("path", [
    "/v2/models/m/versions/1/stats",   # Triton's per-version statistics: a server endpoint
    "/v2/models/m/versions/1/trace/setting",
    "/v2/models/m/versions/",          # no version ('//' inside a path is refused earlier, 400)
    "/v2/models/m/stats",
    "/v2/models/m/infer/more",
])
def test_kserve_v2_server_endpoints_under_a_client_prefix_are_404(run_stream, path):
    """The rendered route's /versions/ prefix match lets any per-version path through; the picker
    answers only the client API there (metadata, /ready, /infer) and 404s the rest."""
    out = asyncio.run(run_stream(make_director(), [headers_msg(path, {":method": "GET"}, eos=True)]))
    imm = out[0].immediate_response
    assert imm.status.code == 404
    assert {h.header.key: h.header.raw_value for h in imm.headers.set_headers}["x-llm-d-request-dropped-reason"] == b"route-not-found"
    assert orjson.loads(imm.body)["error"]["code"] == "route-not-found"


@pytest.mark.parametrize("path", ["/v2/models/m", "/v2/models/m/ready", "/v2/models/m/infer",
                                  "/v2/models/m/versions/3", "/v2/models/m/versions/3/ready",
                                  "/v2/models/m/versions/3/infer?x=1"])
def test_kserve_v2_client_paths_are_routed(run_stream, path):
    out = asyncio.run(run_stream(make_director(), [headers_msg(path, {":method": "GET"}, eos=True)]))
    assert header_value(out[0], "x-gateway-destination-endpoint")


def test_rewrite_weights_over_2000_requests():
    rw = {"metadata": {"name": "split", "creationTimestamp": "2026-01-01T00:00:00Z"},
          "spec": {"rules": [{"matches": [{"model": {"type": "Exact", "value": "chat"}}],
                              "targets": [{"modelRewrite": "v1", "weight": 90}, {"modelRewrite": "v2", "weight": 10}]}]}}
    d = make_director(rewrites=[rw])
    counts: collections.Counter[str] = collections.Counter()
    for i in range(2000):
        r = d.route("/v1/chat/completions", {"x-request-id": f"req-{i}"}, b'{"model":"chat","messages":[{"role":"user","content":"hi"}]}')
        counts[r.target_model] += 1
        d.release_request(r)
    assert 1740 <= counts["v1"] <= 1860  # 90% ± 3 points (binomial sd ≈ 13 requests)
    assert counts["v1"] + counts["v2"] == 2000
    # Deterministic per request id: the same id always gets the same target.
    again = d.route("/v1/chat/completions", {"x-request-id": "req-7"}, b'{"model":"chat","messages":[]}')
    first = d.route("/v1/chat/completions", {"x-request-id": "req-7"}, b'{"model":"chat","messages":[]}')
    assert again.target_model == first.target_model


def test_rewrite_precedence_exact_over_catch_all_then_oldest():
    d = make_director(rewrites=[
        {"metadata": {"name": "catch", "creationTimestamp": "2020-01-01T00:00:00Z"},
         "spec": {"rules": [{"targets": [{"modelRewrite": "default-target"}]}]}},
        {"metadata": {"name": "newer", "creationTimestamp": "2026-02-01T00:00:00Z"},
         "spec": {"rules": [{"matches": [{"model": {"value": "a"}}], "targets": [{"modelRewrite": "from-newer"}]}]}},
        {"metadata": {"name": "older", "creationTimestamp": "2025-01-01T00:00:00Z"},
         "spec": {"rules": [{"matches": [{"model": {"value": "a"}}], "targets": [{"modelRewrite": "from-older"}]}]}},
    ])
    assert d.route("/v1/completions", {}, b'{"model":"a","prompt":"x"}').target_model == "from-older"
    assert d.route("/v1/completions", {}, b'{"model":"b","prompt":"x"}').target_model == "default-target"


@pytest.mark.parametrize(
    "path,headers,body,model",
    [
        pytest.param("/v1/completions", {}, b'{"model":"a","prompt":"x"}', "a", id="openai-completions"),
        pytest.param("/v1/chat/completions", {}, b'{"model":"a","messages":[{"role":"user","content":"x"}]}', "a", id="chat"),
        pytest.param("/v1/embeddings", {}, b'{"model":"e","input":["x","y"]}', "e", id="embeddings"),
        pytest.param("/v1/responses", {}, b'{"model":"r","input":"x"}', "r", id="responses"),
        pytest.param("/api/v1/task/text-generation", {}, b'{"model_id":"c","inputs":"x"}', "c", id="caikit"),
        pytest.param("/v2/models/triton-m/infer", {}, b'{"inputs":[{"name":"x","data":[1]}]}', "triton-m", id="kserve-v2"),
        pytest.param("/caikit.runtime.Nlp.NlpService/EmbeddingTaskPredict", {"content-type": "application/grpc", "mm-model-id": "g"},
                     b"\x00\x00\x00\x00\x03\x0a\x01x", "g", id="grpc-caikit-header"),
        pytest.param("/fmaas.GenerationService/Generate", {"content-type": "application/grpc"},
                     b"\x00\x00\x00\x00\x0c\x0a\x04tgis\x1a\x04\x12\x02hi", "tgis", id="grpc-tgis-model-id"),
        pytest.param("/inference.GRPCInferenceService/ModelInfer", {"content-type": "application/grpc"},
                     b"\x00\x00\x00\x00\x06\x0a\x04iris", "iris", id="grpc-kserve-model-name"),
    ],
)
def test_parsers_find_the_model(path, headers, body, model):
    d = make_director()
    assert d.route(path, headers, body).client_model == model


def test_priority_lookup_order():
    from endpoint_picker.datastore import parse_objective

    d = make_director()
    d.store.set_objectives([
        parse_objective({"metadata": {"name": "premium"}, "spec": {"priority": 100}}),
        parse_objective({"metadata": {"name": "llama"}, "spec": {"priority": -10}}),
        parse_objective({"metadata": {"name": "annotated", "annotations": {"inference-gateway.dev/model": "qwen"}},
                         "spec": {"priority": 5}}),
        parse_objective({"metadata": {"name": "unset"}, "spec": {}}),
    ])
    assert d.store.priority_for("premium", "llama") == 100  # header wins
    assert d.store.priority_for(None, "llama") == -10  # objective named like the model
    assert d.store.priority_for(None, "qwen") == 5  # annotation
    assert d.store.priority_for(None, "other") == 0  # default
    assert d.store.priority_for("unset", None) == 0  # priority unset = 0


def test_engine_none_uses_inflight_load_and_never_sheds_on_staleness():
    from endpoint_picker.datastore import parse_objective

    d = make_director({"scrape": {"engine": "none"}})
    d.store.set_objectives([parse_objective({"metadata": {"name": "m"}, "spec": {"priority": -1}})])
    picks = collections.Counter()
    held = []
    for i in range(8):  # held open: each pick adds in-flight load to its endpoint
        r = d.route("/v1/completions", {}, b'{"model":"m","prompt":"p%d"}' % i)  # sheddable, metrics never scraped
        picks[r.primary] += 1
        held.append(r)
    assert sorted(picks.values()) == [2, 2, 2, 2]  # in-flight load spreads the burst evenly
    for r in held:
        d.release_request(r)
    assert all(f.requests == 0 for f in d.store.inflight.values())


def test_compressed_response_is_passed_through_untouched(run_stream):
    rw = {"metadata": {"name": "rw"}, "spec": {"rules": [{"targets": [{"modelRewrite": "served", "weight": 1}]}]}}
    d = make_director(rewrites=[rw])
    body = orjson.dumps({"model": "client", "prompt": "hi"})
    gz = base_pb2.HeaderMap(headers=[base_pb2.HeaderValue(key="content-encoding", raw_value=b"gzip")])
    payload = b'\x1f\x8b"model":"served"'  # pretend-compressed bytes that happen to contain the pair
    msgs = [headers_msg("/v1/completions"), *body_msgs(body, 100),
            pb.ProcessingRequest(response_headers=pb.HttpHeaders(headers=gz)),
            pb.ProcessingRequest(response_body=pb.HttpBody(body=payload, end_of_stream=True))]
    out = asyncio.run(run_stream(d, msgs))
    assert out[2] == pb.ProcessingResponse(response_headers=pb.HeadersResponse())  # content-length kept
    assert out[3].response_body.response.body_mutation.streamed_response.body == payload


def served_body_msg(data: bytes, served: str | None, eos: bool = False) -> pb.ProcessingRequest:
    req = pb.ProcessingRequest(response_body=pb.HttpBody(body=data, end_of_stream=eos))
    if served is not None:
        md = req.metadata_context.filter_metadata["envoy.lb"]
        md.fields["x-gateway-destination-endpoint-served"].string_value = served
    return req


def test_skipped_response_headers_served_endpoint_and_release_from_body_messages():
    """The generated Envoy config skips response headers: the first body message carries the
    served endpoint (fallback), the first bytes release the prompt tokens, stream end the request."""
    from endpoint_picker.server import StreamState

    d = make_director()
    cfg = load_config({}).ext_proc
    st = StreamState(d, cfg, True, True)
    assert st.handle(headers_msg("/v1/completions")) == []
    out = []
    for m in body_msgs(orjson.dumps({"model": "m", "prompt": "p" * 4000}), 1000):
        out += st.handle(m)
    assert header_value(out[0], "accept-encoding") is None  # nothing to restore: compression allowed
    primary = st.routed.primary
    fallback = next(f"{a}:8000" for a in EPS if f"{a}:8000" != primary)
    assert d.store.inflight[primary].requests == 1 and d.store.inflight[primary].tokens == 1000
    data = b'{"model":"m","choices":[]}'
    out = st.handle(served_body_msg(data, fallback))
    assert out[0].response_body.response.body_mutation.streamed_response.body == data
    assert d.store.inflight[primary].requests == 0
    assert d.store.inflight[fallback].requests == 1 and d.store.inflight[fallback].tokens == 0  # prefill over
    out = st.handle(served_body_msg(b"", fallback, eos=True))
    assert out[0].response_body.response.body_mutation.streamed_response.end_of_stream
    assert d.store.inflight[fallback].requests == 1  # still in flight until the stream ends
    st.close()
    assert all(f.requests == 0 and f.tokens == 0 for f in d.store.inflight.values())


def test_skipped_response_headers_restore_asks_for_identity_and_spares_compressed_bodies(run_stream):
    rw = {"metadata": {"name": "rw"}, "spec": {"rules": [{"targets": [{"modelRewrite": "served", "weight": 1}]}]}}
    body = orjson.dumps({"model": "client", "prompt": "hi"})
    sse = b'data: {"model":"served","x":1}\n\ndata: [DONE]\n\n'
    out = asyncio.run(run_stream(make_director(rewrites=[rw]), [
        headers_msg("/v1/completions"), *body_msgs(body, 100),
        served_body_msg(b"", None), served_body_msg(sse, "10.0.0.1:8000"), served_body_msg(b"", None, eos=True)]))
    assert header_value(out[0], "accept-encoding") == "identity"  # restore needs the plain body
    text = b"".join(r.response_body.response.body_mutation.streamed_response.body for r in out[2:])
    assert text == sse.replace(b"served", b"client")
    # A server that compresses anyway (headers unseen): passed through untouched.
    payload = b'\x1f\x8b"model":"served"'
    out = asyncio.run(run_stream(make_director(rewrites=[rw]), [
        headers_msg("/v1/completions"), *body_msgs(body, 100), served_body_msg(payload, None, eos=True)]))
    assert out[2].response_body.response.body_mutation.streamed_response.body == payload
