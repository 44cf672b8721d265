"""The simulator as TGIS (fmaas.GenerationService over gRPC, TGIS's validation messages, tgi_*
metrics) and as OpenVINO Model Server / Triton (KServe v2 REST and gRPC, each server's errors and
metric names), on the shared engine."""

from __future__ import annotations

import itertools
import threading
import time
from typing import Iterator

import grpc
import httpx
import pytest

from vllm_simulator import SimConfig, start_in_thread
from vllm_simulator.protocols.stubs import load

_hosts = itertools.count(150)


def start(runtime: str, models: list[str], **kw):
    return start_in_thread(SimConfig(host=f"127.0.80.{next(_hosts)}", port=0, grpc_port=0, runtime=runtime,
                                     served_model_name=models, model=models[0], time_scale=0.01, pod_name="p0", **kw))


def channel(h) -> grpc.Channel:
    return grpc.insecure_channel(f"{h.replicas[0].cfg.host}:{h.replicas[0].cfg.grpc_port}")


@pytest.fixture(scope="module")
def tgis() -> Iterator:
    h = start("tgis", ["google/flan-t5-small"], max_model_len=64, max_num_seqs=1)
    yield h
    h.stop()


# -- TGIS ---------------------------------------------------------------------------------------------
def generate(h, *texts: str, **stopping):
    f = load("fmaas")
    req = f.pb.BatchedGenerationRequest(requests=[f.pb.GenerationRequest(text=t) for t in texts],
                                        params=f.pb.Parameters(stopping=f.pb.StoppingCriteria(**stopping)))
    return f.grpc.GenerationServiceStub(channel(h)).Generate.with_call(req)


def test_generate_batch(tgis):
    resp, call = generate(tgis, "At what temperature does Nitrogen boil?", "b", max_new_tokens=6)
    assert [r.input_token_count for r in resp.responses] == [10, 1]
    for r in resp.responses:
        assert 3 <= r.generated_token_count <= 6 and len(r.text) == 4 * r.generated_token_count
        assert r.stop_reason == (1 if r.generated_token_count == 6 else 2)  # MAX_TOKENS / EOS_TOKEN
    assert dict(call.initial_metadata()) == {"x-inference-pod": "p0", "x-sim-model": "google/flan-t5-small"}
    default, _ = generate(tgis, "x")
    assert 10 <= default.responses[0].generated_token_count <= 20  # max_new_tokens 0 = TGIS's 20


def test_generate_stream_first_message_then_tokens(tgis):
    f = load("fmaas")
    req = f.pb.SingleGenerationRequest(request=f.pb.GenerationRequest(text="hello"),
                                       params=f.pb.Parameters(stopping=f.pb.StoppingCriteria(max_new_tokens=5)))
    msgs = list(f.grpc.GenerationServiceStub(channel(tgis)).GenerateStream(req))
    assert (msgs[0].input_token_count, msgs[0].text, msgs[0].generated_token_count) == (2, "", 0)
    assert [m.generated_token_count for m in msgs[1:]] == list(range(1, len(msgs)))
    assert all(m.stop_reason == 0 for m in msgs[1:-1]) and msgs[-1].stop_reason in (1, 2)


@pytest.mark.parametrize("texts, stopping, details", [
    (["x"], {"max_new_tokens": 5000}, "max_new_tokens must be <= 1024"),
    (["x"], {"max_new_tokens": 2, "min_new_tokens": 3}, "min_new_tokens must be <= max_new_tokens"),
    (["x" * 256], {}, "input tokens (64) plus prefix length (0) must be < 64"),
])
def test_tgis_validation_is_invalid_argument(tgis, texts, stopping, details):
    with pytest.raises(grpc.RpcError) as err:
        generate(tgis, *texts, **stopping)
    assert (err.value.code(), err.value.details()) == (grpc.StatusCode.INVALID_ARGUMENT, details)


def test_requests_queue_on_the_engine(tgis):
    """max_num_seqs 1: two concurrent generations run one after the other on the one engine."""
    base = f"http://{tgis.replicas[0].cfg.host}:{tgis.replicas[0].cfg.port}"
    before = httpx.get(base + "/metrics").text
    httpx.post(base + "/sim/control", json={"time_scale": 0.2})  # ~65 ms per generation: observable
    seen = []

    def watch():
        for _ in range(200):
            seen.append(tgis.state())
            time.sleep(0.002)

    t = threading.Thread(target=watch)
    t.start()
    threads = [threading.Thread(target=generate, args=(tgis, "q"), kwargs={"max_new_tokens": 40}) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    t.join()
    httpx.post(base + "/sim/control", json={"time_scale": 0.01})
    assert any(s["running"] == 1 and s["waiting"] == 1 for s in seen)
    after = httpx.get(base + "/metrics").text
    count = lambda text: int(next(l for l in text.splitlines() if l.startswith("tgi_request_input_count ")).split()[1])
    assert count(after) == count(before) + 2
    assert 'tgi_request_failure{err="validation"}' in after


def test_tokenize_model_info_and_health(tgis):
    f = load("fmaas")
    stub = f.grpc.GenerationServiceStub(channel(tgis))
    tok = stub.Tokenize(f.pb.BatchedTokenizeRequest(requests=[f.pb.TokenizeRequest(text="abcdefgh")], return_tokens=True))
    assert tok.responses[0].token_count == 2 and list(tok.responses[0].tokens) == ["abcd", "efgh"]
    info = stub.ModelInfo(f.pb.ModelInfoRequest())
    assert (info.max_sequence_length, info.max_new_tokens) == (64, 1024)
    base = f"http://{tgis.replicas[0].cfg.host}:{tgis.replicas[0].cfg.port}"
    assert httpx.get(base + "/health").status_code == 200 and httpx.get(base + "/v1/models").status_code == 404


# -- KServe v2 ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=["triton", "openvino"])
def kserve(request) -> Iterator:
    h = start(request.param, ["iris-a", "iris-b"])
    h.runtime = request.param
    yield h
    h.stop()


ERRORS = {
    "triton": {"model": (404, "Request for unknown model: 'nope' is not found"),
               "shape": (400, "[request id: <id_unknown>] unexpected shape for input 'input' for model 'iris-a'. Expected [-1,4], got [1,3]"),
               "datatype": (400, "[request id: <id_unknown>] inference input 'input' data-type is 'INT32', but model 'iris-a' expects 'FP32'")},
    "openvino": {"model": (404, "Model with requested name is not found"),
                 "shape": (400, "Invalid input shape - Expected: (-1,4); Actual: [1,3]"),
                 "datatype": (400, "Invalid precision - Expected: FP32; Actual: INT32")},
}


def infer(h, model: str, data, shape, datatype: str = "FP32", path: str = "") -> httpx.Response:
    return httpx.post(f"{h.url}/v2/models/{model}{path}/infer", json={
        "model_name": model, "inputs": [{"name": "input", "shape": shape, "datatype": datatype, "data": data}]})


def test_infer_rest(kserve):
    r = infer(kserve, "iris-b", [[1, 2, 3, 4], [5, 6, 7, 8]], [2, 4])
    out = r.json()
    assert r.status_code == 200 and (out["model_name"], out["model_version"]) == ("iris-b", "1")
    assert out["outputs"][0]["shape"] == [2, 3] and out["outputs"][0]["name"] == "output"
    probs = out["outputs"][0]["data"]
    assert sum(probs[:3]) == pytest.approx(1.0) and sum(probs[3:]) == pytest.approx(1.0)
    assert infer(kserve, "iris-b", [1, 2, 3, 4, 5, 6, 7, 8], [2, 4], path="/versions/1").json()["outputs"] == out["outputs"]
    assert infer(kserve, "iris-a", [1, 2, 3, 4, 5, 6, 7, 8], [2, 4]).json()["outputs"][0]["data"] != probs


@pytest.mark.parametrize("kind, call", [
    ("model", lambda h: infer(h, "nope", [1, 2, 3, 4], [1, 4])),
    ("shape", lambda h: infer(h, "iris-a", [1, 2, 3], [1, 3])),
    ("datatype", lambda h: infer(h, "iris-a", [1, 2, 3, 4], [1, 4], "INT32")),
])
def test_infer_rest_errors_are_the_servers(kserve, kind, call):
    r = call(kserve)
    assert (r.status_code, r.json()) == (ERRORS[kserve.runtime][kind][0], {"error": ERRORS[kserve.runtime][kind][1]})


def test_server_and_model_metadata_and_readiness(kserve):
    meta = httpx.get(kserve.url + "/v2").json()
    assert meta["name"] == {"triton": "triton", "openvino": "OpenVINO Model Server"}[kserve.runtime]
    model = httpx.get(kserve.url + "/v2/models/iris-a").json()
    assert model["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}] and model["versions"] == ["1"]
    assert httpx.get(kserve.url + "/v2/models/iris-a/ready").status_code == 200
    assert httpx.get(kserve.url + "/v2/models/iris-a/versions/2/ready").status_code == 404
    assert httpx.get(kserve.url + "/v2/health/live").status_code == 200 and httpx.get(kserve.url + "/v2/health/ready").status_code == 200


def test_infer_grpc_contents_and_raw(kserve):
    k = load("kserve")
    stub = k.grpc.GRPCInferenceServiceStub(channel(kserve))
    T = k.pb.ModelInferRequest.InferInputTensor
    rest = infer(kserve, "iris-a", [1, 2, 3, 4], [1, 4]).json()["outputs"][0]["data"]
    by_contents = stub.ModelInfer(k.pb.ModelInferRequest(model_name="iris-a", id="r1", inputs=[
        T(name="input", datatype="FP32", shape=[1, 4], contents=k.pb.InferTensorContents(fp32_contents=[1, 2, 3, 4]))]))
    assert by_contents.id == "r1" and list(by_contents.outputs[0].contents.fp32_contents) == pytest.approx(rest, rel=1e-6)
    import struct
    by_raw = stub.ModelInfer(k.pb.ModelInferRequest(model_name="iris-a", inputs=[T(name="input", datatype="FP32", shape=[1, 4])],
                                                     raw_input_contents=[struct.pack("<4f", 1, 2, 3, 4)]))
    assert list(struct.unpack("<3f", by_raw.raw_output_contents[0])) == pytest.approx(rest, rel=1e-6)
    assert stub.ServerLive(k.pb.ServerLiveRequest()).live and stub.ModelReady(k.pb.ModelReadyRequest(name="iris-b")).ready
    with pytest.raises(grpc.RpcError) as err:
        stub.ModelInfer(k.pb.ModelInferRequest(model_name="iris-a", inputs=[
            T(name="input", datatype="INT32", shape=[1, 4], contents=k.pb.InferTensorContents(fp32_contents=[1, 2, 3, 4]))]))
    assert (err.value.code(), err.value.details()) == (grpc.StatusCode.INVALID_ARGUMENT, ERRORS[kserve.runtime]["datatype"][1])
    with pytest.raises(grpc.RpcError) as err:
        stub.ModelMetadata(k.pb.ModelMetadataRequest(name="nope"))
    assert (err.value.code(), err.value.details()) == (grpc.StatusCode.NOT_FOUND, ERRORS[kserve.runtime]["model"][1])


def test_metrics_have_the_servers_names(kserve):
    infer(kserve, "iris-a", [1, 2, 3, 4], [1, 4])
    text = httpx.get(kserve.url + "/metrics").text
    if kserve.runtime == "triton":
        assert 'nv_inference_request_success{model="iris-a",version="1"}' in text
    else:
        assert 'ovms_requests_success{api="KServe",interface="REST",method="ModelInfer",name="iris-a",version="1"}' in text
    assert "nope" not in text  # no series for names that are not models
