"""Seed 003's runtimes end to end: `igw up --stack runtimes` (real Envoy -> the pickers -> the
simulator speaking Caikit, TGIS and KServe v2), every seed-003 example call through the gateway
with a bearer token, streaming where the runtime streams, a traffic split between two models of
each runtime, a rate limit read from each place a runtime puts its model, and bad requests
answered in the runtime's own error shape.

The stack runs on its own loopback range and ports (IGW_E2E_RUNTIMES_ADDRESS_BASE /
IGW_E2E_RUNTIMES_PORT pin them), with its own API keys file.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import Counter
from pathlib import Path

import grpc
import httpx
import pytest

from endpoint_picker import loopback
from vllm_simulator.protocols.stubs import load

from igw.local.process import free_address_base

from .conftest import igw, pid_alive

KEY = "igw-runtimes-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
GRPC_AUTH = [("authorization", f"Bearer {KEY}")]
POD_PORTS = (8080, 3000, 8888, 8000, 8085, 8033, 8001)


class Runtimes:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        st = self.state()
        self.port = {lst["gateway"].split("/")[1]: lst["local_port"] for lst in st["listeners"]}
        self.http = httpx.Client(timeout=30, headers=AUTH)

    def state(self) -> dict:
        return json.loads((self.state_dir / "state.json").read_text())

    def url(self, gateway: str) -> str:
        return f"http://127.0.0.1:{self.port[gateway]}"

    def channel(self, gateway: str) -> grpc.Channel:
        return grpc.insecure_channel(f"127.0.0.1:{self.port[gateway]}")


@pytest.fixture(scope="module")
def rt(tmp_path_factory) -> Runtimes:
    tmp = tmp_path_factory.mktemp("igw-runtimes")
    keys = tmp / "keys.yaml"
    keys.write_text(f"{hashlib.sha256(KEY.encode()).hexdigest()}: alice\n")
    port = int(os.environ.get("IGW_E2E_RUNTIMES_PORT") or loopback.free_port_block(4, "127.0.0.1"))
    base = os.environ.get("IGW_E2E_RUNTIMES_ADDRESS_BASE") or free_address_base(6, POD_PORTS)
    t = time.monotonic()
    r = igw("up", "--stack", "runtimes", "--detach", "--port", str(port), "--state-dir", str(tmp / "state"),
            "--address-base", base, "--time-scale", "0.05", "--api-keys-file", str(keys), "--timeout", "90", timeout=180)
    assert r.returncode == 0, f"igw up failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    stack = Runtimes(tmp / "state")
    stack.up_seconds, stack.up_output = time.monotonic() - t, r.stdout
    try:
        yield stack
    finally:
        st = stack.state()
        pids = [p["pid"] for p in st["processes"].values()] + [st["supervisor_pid"]]
        d = igw("down", "--stack", "runtimes", "--state-dir", str(tmp / "state"))
        stack.http.close()
        assert d.returncode == 0, d.stderr
        assert not [pid for pid in pids if pid_alive(pid)]


def sim_model(headers) -> str:
    return dict(headers)["x-sim-model"]


# -- igw up ---------------------------------------------------------------------------------------
def test_every_runtime_pod_is_ready_on_its_own_health_check(rt):
    st = rt.state()
    sims = {p["name"]: p for p in st["processes"].values() if p["kind"] == "simulator"}
    assert {p["runtime"] for p in sims.values()} == {"caikit-tgis", "caikit-standalone", "tgis", "openvino", "triton"}
    assert {p["readiness_path"] for p in sims.values()} == {"/health", "/v2/health/ready"}
    assert all(p["ready"] for p in sims.values())
    assert st["pools"]["triton-iris-grpc"]["replicas"] == st["pools"]["triton-iris"]["replicas"] == ["triton-iris-0"]
    assert st["pools"]["tgis-flan-small"]["app_protocol"] == "kubernetes.io/h2c"
    import yaml

    clusters = {c["name"]: c for c in yaml.safe_load((rt.state_dir / "envoy" / "xds" / "cds.yaml").read_text())["resources"]}
    h2 = {n for n, c in clusters.items() if "http2_protocol_options" in str(c.get("typed_extension_protocol_options"))}
    assert {n for n in h2 if n.startswith("pool.")} == {"pool.caikit-embeddings-grpc", "pool.tgis-flan-base",
                                                          "pool.tgis-flan-small", "pool.triton-iris-grpc"}
    # the summary's examples are the runtimes' own calls, not /v1/chat/completions
    assert "/v1/chat/completions" not in rt.up_output
    assert "/api/v1/task/server-streaming-text-generation" in rt.up_output and "GenerationServiceStub" in rt.up_output


def test_bearer_token_is_required(rt):
    r = httpx.post(rt.url("text") + "/api/v1/task/text-generation", json={"model_id": "flan", "inputs": "x"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    f = load("fmaas")
    with pytest.raises(grpc.RpcError) as err:
        f.grpc.GenerationServiceStub(rt.channel("text")).Generate(f.pb.BatchedGenerationRequest(), timeout=10)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


# -- Caikit+TGIS ------------------------------------------------------------------------------------
def test_caikit_tgis_seed_example_streams(rt):
    # curl --json '{"model_id": ..., "inputs": ...}' .../api/v1/task/server-streaming-text-generation -H 'Authorization: Bearer <token>'
    with rt.http.stream("POST", rt.url("text") + "/api/v1/task/server-streaming-text-generation",
                        json={"model_id": "flan", "inputs": "At what temperature does water boil?"}) as s:
        assert s.status_code == 200 and s.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(e.split("data: ", 1)[1]) for e in s.read().decode().split("\r\n\r\n") if e]
    assert events[0]["details"]["input_token_count"] == 9 and len(events) >= 11  # max_new_tokens 20: >= 10 tokens
    assert events[-1]["details"]["finish_reason"] in ("MAX_TOKENS", "EOS_TOKEN")


def test_caikit_tgis_split_and_errors(rt):
    u = rt.url("text") + "/api/v1/task/text-generation"
    seen = Counter(sim_model(rt.http.post(u, json={"model_id": "flan", "inputs": f"q{i}"}).headers) for i in range(24))
    assert set(seen) == {"flan-t5-small-caikit", "flan-t5-small-prompt-tuned"} and min(seen.values()) >= 4, seen
    direct = rt.http.post(rt.url("text") + "/served-models/flan-t5-small-prompt-tuned/invocations", json={"inputs": "x"})
    assert direct.status_code == 200 and sim_model(direct.headers) == "flan-t5-small-prompt-tuned"
    bad = rt.http.post(u, json={"model_id": "flan"})
    assert bad.status_code == 422 and bad.json()["details"] == "Field required: inputs" and bad.json()["code"] == 422
    unknown = rt.http.post(u, json={"model_id": "nope", "inputs": "x"})
    assert (unknown.status_code, unknown.json()["details"]) == (404, "Model 'nope' not loaded")


def test_rate_limit_reads_caikit_model_id(rt):
    u = rt.url("text") + "/api/v1/task/text-generation"
    codes = [rt.http.post(u, json={"model_id": "flan-trial", "inputs": "x"}).status_code for _ in range(3)]
    limited = rt.http.post(u, json={"model_id": "flan-trial", "inputs": "x"})
    assert codes == [200] * 3 and limited.status_code == 429 and limited.headers["retry-after"]
    assert limited.json()["error"]["code"] == "rate-limited"


# -- Caikit standalone ------------------------------------------------------------------------------
def test_caikit_standalone_seed_examples_rest_and_grpc(rt):
    # curl -d '{"inputs": "<text>", "model_id": "<model_id>"}' .../api/v1/task/embedding -H 'Authorization: Bearer <token>'
    r = rt.http.post(rt.url("embeddings") + "/api/v1/task/embedding", json={"inputs": "hello", "model_id": "embeddings"})
    assert r.status_code == 200 and len(r.json()["result"]["data"]["values"]) == 384
    # grpcurl -d '{"text": "<text>"}' -H "mm-model-id: <model_id>" ... caikit.runtime.Nlp.NlpService/EmbeddingTaskPredict
    nlp = load("caikit_nlp")
    stub = nlp.grpc.NlpServiceStub(rt.channel("embeddings"))
    resp = stub.EmbeddingTaskPredict(nlp.pb.EmbeddingTaskRequest(text="hello"), metadata=GRPC_AUTH + [("mm-model-id", "embeddings-grpc")])
    assert len(resp.result.data_pyfloatsequence.values) == 384 and resp.input_token_count == 2
    info = load("caikit_info")
    models = info.grpc.InfoServiceStub(rt.channel("embeddings")).GetModelsInfo(info.pb.ModelInfoRequest(), metadata=GRPC_AUTH)
    assert [m.name for m in models.models] == ["all-minilm-l6-v2", "bge-small-en-v1-5"]
    assert rt.http.get(rt.url("embeddings") + "/info/models").json()["models"][1]["name"] == "bge-small-en-v1-5"


def test_caikit_standalone_splits_read_the_body_and_the_mm_model_id_header(rt):
    u = rt.url("embeddings") + "/api/v1/task/embedding"
    rest = Counter(sim_model(rt.http.post(u, json={"model_id": "embeddings", "inputs": f"t{i}"}).headers) for i in range(24))
    nlp = load("caikit_nlp")
    stub = nlp.grpc.NlpServiceStub(rt.channel("embeddings"))
    md = GRPC_AUTH + [("mm-model-id", "embeddings-grpc")]
    grpc_seen = Counter(sim_model(stub.EmbeddingTaskPredict.with_call(nlp.pb.EmbeddingTaskRequest(text=f"t{i}"), metadata=md)[1]
                                  .initial_metadata()) for i in range(24))
    for seen in (rest, grpc_seen):
        assert set(seen) == {"all-minilm-l6-v2", "bge-small-en-v1-5"} and min(seen.values()) >= 4, seen


def test_caikit_grpc_rate_limit_and_errors(rt):
    nlp = load("caikit_nlp")
    stub = nlp.grpc.NlpServiceStub(rt.channel("embeddings"))
    md = GRPC_AUTH + [("mm-model-id", "embeddings-trial")]
    for _ in range(3):
        stub.EmbeddingTaskPredict(nlp.pb.EmbeddingTaskRequest(text="x"), metadata=md)
    with pytest.raises(grpc.RpcError) as err:
        stub.EmbeddingTaskPredict(nlp.pb.EmbeddingTaskRequest(text="x"), metadata=md)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "rate-limited" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        stub.EmbeddingTaskPredict(nlp.pb.EmbeddingTaskRequest(text="x"), metadata=GRPC_AUTH + [("mm-model-id", "nope")])
    assert (err.value.code(), err.value.details()) == (grpc.StatusCode.NOT_FOUND, "Model 'nope' not loaded")
    bad = rt.http.post(rt.url("embeddings") + "/api/v1/task/rerank", json={"model_id": "embeddings", "inputs": {"query": "q"}})
    assert bad.status_code == 422 and bad.json()["details"] == "documents: Input should be a valid list of JSON objects"


# -- TGIS --------------------------------------------------------------------------------------------
def test_tgis_seed_example_stream_and_split(rt):
    f = load("fmaas")
    stub = f.grpc.GenerationServiceStub(rt.channel("text"))
    # grpcurl -proto generation.proto -d '{"requests": [{"text":"<text>"}]}' -H 'Authorization: Bearer <token>' ... Generate
    pods = Counter()
    for i in range(20):
        resp, call = stub.Generate.with_call(f.pb.BatchedGenerationRequest(requests=[f.pb.GenerationRequest(text=f"Q{i}")]),
                                             metadata=GRPC_AUTH)
        assert resp.responses[0].generated_token_count >= 10
        pods[dict(call.initial_metadata())["x-inference-pod"]] += 1
    assert set(pods) == {"tgis-flan-small-0", "tgis-flan-base-0"} and min(pods.values()) >= 3, pods  # the route's 50/50
    stream = list(stub.GenerateStream(f.pb.SingleGenerationRequest(request=f.pb.GenerationRequest(text="hello"),
                                                                   params=f.pb.Parameters(stopping=f.pb.StoppingCriteria(max_new_tokens=6))),
                                      metadata=GRPC_AUTH))
    assert stream[0].input_token_count == 2 and [m.generated_token_count for m in stream[1:]] == list(range(1, len(stream)))
    with pytest.raises(grpc.RpcError) as err:
        stub.Generate(f.pb.BatchedGenerationRequest(requests=[f.pb.GenerationRequest(text="x")],
                                                    params=f.pb.Parameters(stopping=f.pb.StoppingCriteria(max_new_tokens=5000))),
                      metadata=GRPC_AUTH)
    assert (err.value.code(), err.value.details()) == (grpc.StatusCode.INVALID_ARGUMENT, "max_new_tokens must be <= 1024")


# -- OpenVINO and Triton (KServe v2) ------------------------------------------------------------------
def infer(rt, gateway: str, path: str, model: str, shape=(1, 4), data=(5.1, 3.5, 1.4, 0.2)) -> httpx.Response:
    # curl -ks .../v2/models/<model_name>/infer -d '{"model_name": ..., "inputs": [{name, shape, datatype, data}]}'
    return rt.http.post(rt.url(gateway) + path, json={"model_name": model, "inputs": [
        {"name": "input", "shape": list(shape), "datatype": "FP32", "data": list(data)}]})


@pytest.mark.parametrize("gateway, model, targets, error", [
    ("openvino", "iris-ov", {"iris-ir", "iris-ir-int8"}, "Invalid input shape - Expected: (-1,4); Actual: [1,3]"),
    ("triton", "iris", {"iris-onnx", "iris-onnx-v2"},
     "[request id: <id_unknown>] unexpected shape for input 'input' for model '{target}'. Expected [-1,4], got [1,3]"),
])
def test_kserve_v2_rest_seed_example_split_and_errors(rt, gateway, model, targets, error):
    seen = Counter()
    for _ in range(24):
        r = infer(rt, gateway, f"/v2/models/{model}/infer", model)
        assert r.status_code == 200 and r.json()["model_name"] == model  # the picker restores the client's name
        assert sum(r.json()["outputs"][0]["data"]) == pytest.approx(1.0)
        seen[sim_model(r.headers)] += 1
    assert set(seen) == targets and min(seen.values()) >= 4, seen
    target = sorted(targets)[1]
    direct = rt.http.post(rt.url(gateway) + f"/served-models/{target}/invocations",
                          json={"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]})
    assert direct.status_code == 200 and sim_model(direct.headers) == target
    bad = infer(rt, gateway, f"/v2/models/{model}/versions/1/infer", model, shape=(1, 3), data=(1, 2, 3))
    assert bad.status_code == 400 and bad.json() == {"error": error.format(target=sim_model(bad.headers))}


def test_triton_grpc_seed_example_split_limit_and_errors(rt):
    k = load("kserve")
    stub = k.grpc.GRPCInferenceServiceStub(rt.channel("triton"))
    # grpcurl -proto grpc_predict_v2.proto -d @ -H "Authorization: Bearer <token>" ... inference.GRPCInferenceService/ModelMetadata
    meta = stub.ModelMetadata(k.pb.ModelMetadataRequest(name="iris-grpc"), metadata=GRPC_AUTH)
    assert meta.name in ("iris-onnx", "iris-onnx-v2") and meta.inputs[0].shape == [-1, 4]
    T = k.pb.ModelInferRequest.InferInputTensor

    def request(model: str, datatype: str = "FP32"):
        return k.pb.ModelInferRequest(model_name=model, inputs=[
            T(name="input", datatype=datatype, shape=[1, 4], contents=k.pb.InferTensorContents(fp32_contents=[5.1, 3.5, 1.4, 0.2]))])
    seen = Counter(sim_model(stub.ModelInfer.with_call(request("iris-grpc"), metadata=GRPC_AUTH)[1].initial_metadata())
                   for _ in range(24))
    assert set(seen) == {"iris-onnx", "iris-onnx-v2"} and min(seen.values()) >= 4, seen
    for _ in range(3):
        stub.ModelInfer(request("iris-trial"), metadata=GRPC_AUTH)
    with pytest.raises(grpc.RpcError) as err:
        stub.ModelInfer(request("iris-trial"), metadata=GRPC_AUTH)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    with pytest.raises(grpc.RpcError) as err:
        stub.ModelInfer(request("iris-onnx-v2", "INT32"), metadata=GRPC_AUTH)  # (iris-onnx is under iris-trial's limit now)
    assert (err.value.code(), err.value.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "[request id: <id_unknown>] inference input 'input' data-type is 'INT32', but model 'iris-onnx-v2' expects 'FP32'")


def test_only_client_api_paths_are_routed(rt):
    assert rt.http.get(rt.url("triton") + "/v2/health/ready").status_code == 404  # health is internal
    assert rt.http.post(rt.url("text") + "/v1/chat/completions", json={}).status_code == 404
    k = load("kserve")
    with pytest.raises(grpc.RpcError) as err:
        k.grpc.GRPCInferenceServiceStub(rt.channel("triton")).ServerLive(k.pb.ServerLiveRequest(), metadata=GRPC_AUTH)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED  # Envoy's 404 for a gRPC client
