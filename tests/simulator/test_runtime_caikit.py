"""The simulator as Caikit+TGIS and Caikit standalone: caikit's REST API (task requests, SSE
streaming, info, caikit's error objects) and its gRPC services (NlpService with mm-model-id,
InfoService), on the shared engine."""

from __future__ import annotations

import itertools
from typing import Iterator

import grpc
import httpx
import orjson
import pytest

from vllm_simulator import SimConfig, start_in_thread
from vllm_simulator.protocols.stubs import load

_hosts = itertools.count(100)
TGIS_MODELS = ["flan-t5-small-caikit", "flan-t5-small-prompt-tuned"]
EMB_MODELS = ["all-minilm-l6-v2", "bge-small-en-v1-5"]


def start(runtime: str, models: list[str], **kw):
    return start_in_thread(SimConfig(host=f"127.0.80.{next(_hosts)}", port=0, grpc_port=0, runtime=runtime,
                                     served_model_name=models, model=models[0], time_scale=0.01, pod_name="p0", **kw))


@pytest.fixture(scope="module")
def tgis() -> Iterator:
    h = start("caikit-tgis", TGIS_MODELS)
    yield h
    h.stop()


@pytest.fixture(scope="module")
def standalone() -> Iterator:
    h = start("caikit-standalone", EMB_MODELS, embedding_dim=16)
    yield h
    h.stop()


def channel(h) -> grpc.Channel:
    return grpc.insecure_channel(f"{h.replicas[0].cfg.host}:{h.replicas[0].cfg.grpc_port}")


def caikit_error(r: httpx.Response, status: int, details: str) -> dict:
    body = r.json()
    assert r.status_code == status and body["details"] == details and body["code"] == status, r.text
    assert len(body["id"]) == 32
    return body


# -- Caikit+TGIS REST -------------------------------------------------------------------------------
def test_text_generation_result_and_engine(tgis):
    steps = tgis.state()["steps"]
    r = httpx.post(tgis.url + "/api/v1/task/text-generation",
                   json={"model_id": TGIS_MODELS[1], "inputs": "At what temperature does water boil?",
                         "parameters": {"max_new_tokens": 8, "preserve_input_text": True}})
    body = r.json()
    assert r.status_code == 200 and r.headers["x-sim-model"] == TGIS_MODELS[1] and r.headers["x-inference-pod"] == "p0"
    assert set(body) == {"generated_text", "generated_tokens", "finish_reason", "producer_id", "input_token_count",
                         "seed", "tokens", "input_tokens"}
    assert body["generated_text"].startswith("At what temperature does water boil?")
    assert 4 <= body["generated_tokens"] <= 8 and body["input_token_count"] == 9
    assert body["finish_reason"] == ("MAX_TOKENS" if body["generated_tokens"] == 8 else "EOS_TOKEN")
    assert body["producer_id"] == {"name": "Text Generation", "version": "0.1.0"}
    assert tgis.state()["steps"] >= steps + body["generated_tokens"]  # one engine step per token


def test_streaming_text_generation_is_server_sent_events(tgis):
    with httpx.stream("POST", tgis.url + "/api/v1/task/server-streaming-text-generation",
                      json={"model_id": TGIS_MODELS[0], "inputs": "hi", "parameters": {"max_new_tokens": 6}}) as s:
        assert s.status_code == 200 and s.headers["content-type"] == "text/event-stream; charset=utf-8"
        events = [e for e in s.read().decode().split("\r\n\r\n") if e]
    parsed = [orjson.loads(e.split("\r\ndata: ", 1)[1]) for e in events]
    assert all(e.startswith("event: message\r\ndata: ") for e in events)
    first, tokens = parsed[0], parsed[1:]
    assert first["generated_text"] == "" and first["details"]["input_token_count"] == 1
    assert [t["details"]["generated_tokens"] for t in tokens] == list(range(1, len(tokens) + 1))
    assert all(t["details"]["finish_reason"] == "NOT_FINISHED" for t in tokens[:-1])
    assert tokens[-1]["details"]["finish_reason"] in ("MAX_TOKENS", "EOS_TOKEN") and 3 <= len(tokens) <= 6


def test_rest_errors_are_caikit_error_objects(tgis):
    u = tgis.url + "/api/v1/task/text-generation"
    caikit_error(httpx.post(u, json={"model_id": "nope", "inputs": "x"}), 404, "Model 'nope' not loaded")
    caikit_error(httpx.post(u, json={"inputs": "x"}), 400, "Please provide model_id in payload")
    body = caikit_error(httpx.post(u, json={"model_id": TGIS_MODELS[0]}), 422, "Field required: inputs")
    assert body["additional_info"] == [{"type": "value_error", "loc": ["body"], "msg": "Field required: inputs"}]
    caikit_error(httpx.post(u, json={"model_id": TGIS_MODELS[0], "inputs": 5}), 422, "inputs: Input should be a valid string")
    caikit_error(httpx.post(u, json={"model_id": TGIS_MODELS[0], "inputs": "x", "parameters": {"max_new_tokens": 5000}}),
                 400, "max_new_tokens must be <= 1024")
    assert httpx.post(u, content=b"{not json").status_code == 422
    # a streaming request resolves its model inside the stream, as caikit does
    s = httpx.post(tgis.url + "/api/v1/task/server-streaming-text-generation", json={"model_id": "nope", "inputs": "x"})
    assert s.status_code == 200 and s.text.startswith("event: error\r\ndata: ")
    assert orjson.loads(s.text.split("data: ", 1)[1])["details"] == "Model 'nope' not loaded"


def test_only_the_runtimes_own_paths_exist(tgis):
    assert httpx.post(tgis.url + "/v1/chat/completions", json={}).json() == {"detail": "Not Found"}
    assert httpx.post(tgis.url + "/api/v1/task/embedding", json={}).status_code == 404  # not this runtime's task
    assert httpx.get(tgis.url + "/api/v1/task/text-generation").status_code == 405
    assert httpx.get(tgis.url + "/health").text == "OK"
    models = httpx.get(tgis.url + "/info/models").json()["models"]
    assert [m["name"] for m in models] == TGIS_MODELS and all(m["loaded"] for m in models)
    assert httpx.get(tgis.url + "/info/version").json() == httpx.get(tgis.url + "/info/runtime").json()


# -- Caikit gRPC ------------------------------------------------------------------------------------
def test_nlp_service_text_generation_over_grpc(tgis):
    nlp = load("caikit_nlp")
    stub = nlp.grpc.NlpServiceStub(channel(tgis))
    md = [("mm-model-id", TGIS_MODELS[0])]
    resp, call = stub.TextGenerationTaskPredict.with_call(nlp.pb.TextGenerationTaskRequest(text="hello", max_new_tokens=4), metadata=md)
    assert 2 <= resp.generated_tokens <= 4 and resp.input_token_count == 2 and resp.generated_text
    assert dict(call.initial_metadata())["x-sim-model"] == TGIS_MODELS[0]
    stream = list(stub.ServerStreamingTextGenerationTaskPredict(
        nlp.pb.ServerStreamingTextGenerationTaskRequest(text="hello", max_new_tokens=4), metadata=md))
    assert stream[0].details.input_token_count == 2 and stream[0].generated_text == ""
    assert [m.details.generated_tokens for m in stream[1:]] == list(range(1, len(stream)))
    assert stream[-1].details.finish_reason in (1, 2)  # MAX_TOKENS, EOS_TOKEN


@pytest.mark.parametrize("md, code, details", [
    ([], grpc.StatusCode.INVALID_ARGUMENT, "Could not read required metadata: mm-model-id"),
    ([("mm-model-id", "nope")], grpc.StatusCode.NOT_FOUND, "Model 'nope' not loaded"),
])
def test_nlp_service_errors(tgis, md, code, details):
    nlp = load("caikit_nlp")
    with pytest.raises(grpc.RpcError) as err:
        nlp.grpc.NlpServiceStub(channel(tgis)).TextGenerationTaskPredict(nlp.pb.TextGenerationTaskRequest(text="x"), metadata=md)
    assert (err.value.code(), err.value.details()) == (code, details)


def test_tasks_of_another_runtime_are_unimplemented(tgis):
    nlp = load("caikit_nlp")
    with pytest.raises(grpc.RpcError) as err:
        nlp.grpc.NlpServiceStub(channel(tgis)).EmbeddingTaskPredict(nlp.pb.EmbeddingTaskRequest(text="x"),
                                                                      metadata=[("mm-model-id", TGIS_MODELS[0])])
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_info_service(tgis):
    info = load("caikit_info")
    stub = info.grpc.InfoServiceStub(channel(tgis))
    assert [m.name for m in stub.GetModelsInfo(info.pb.ModelInfoRequest()).models] == TGIS_MODELS
    with pytest.raises(grpc.RpcError) as err:
        stub.GetModelsInfo(info.pb.ModelInfoRequest(model_ids=["nope"]))
    assert (err.value.code(), err.value.details()) == (grpc.StatusCode.NOT_FOUND, "Model nope is not loaded")
    assert stub.GetRuntimeInfo(info.pb.RuntimeInfoRequest()).python_packages["caikit_nlp"]


# -- Caikit standalone (embedding module) ----------------------------------------------------------
def post(h, task: str, inputs, model: str = EMB_MODELS[0], **params) -> httpx.Response:
    return httpx.post(f"{h.url}/api/v1/task/{task}", json={"model_id": model, "inputs": inputs, "parameters": params})


def test_embedding_tasks_over_rest(standalone):
    one = post(standalone, "embedding", "hello").json()
    assert len(one["result"]["data"]["values"]) == 16 and one["input_token_count"] == 2
    many = post(standalone, "embedding-tasks", ["hello", "world"]).json()
    vectors = [v["data"]["values"] for v in many["results"]["results"]]
    assert vectors[0] == one["result"]["data"]["values"] and vectors[0] != vectors[1]
    sim = post(standalone, "sentence-similarity", {"source_sentence": "a cat", "sentences": ["a cat", "dogs"]}).json()
    assert sim["result"]["scores"][0] == pytest.approx(1.0) and abs(sim["result"]["scores"][1]) < 1
    sims = post(standalone, "sentence-similarity-tasks", {"source_sentences": ["a", "b"], "sentences": ["a", "b"]}).json()
    assert [round(s["scores"][i], 6) for i, s in enumerate(sims["results"])] == [1.0, 1.0]


def test_rerank_orders_by_relevance_and_honours_options(standalone):
    docs = [{"text": "dogs bark"}, {"text": "cats purr", "id": 7}, {"_text": "fish swim"}]
    r = post(standalone, "rerank", {"query": "cats purr", "documents": docs}, top_n=2).json()["result"]
    assert r["query"] == "cats purr" and [s["index"] for s in r["scores"]][0] == 1 and len(r["scores"]) == 2
    assert r["scores"][0]["document"] == {"text": "cats purr", "id": 7} and r["scores"][0]["score"] == pytest.approx(1.0)
    bare = post(standalone, "rerank", {"query": "x", "documents": docs}, return_documents=False, return_text=False,
                return_query=False).json()["result"]
    assert bare["query"] is None and {s["document"] for s in bare["scores"]} == {None} and len(bare["scores"]) == 3
    tasks = post(standalone, "rerank-tasks", {"queries": ["a", "b"], "documents": docs}).json()
    assert [q["query"] for q in tasks["results"]] == ["a", "b"]


def test_embedding_input_errors(standalone):
    caikit_error(post(standalone, "embedding", ["not", "a", "string"]), 422, "inputs: Input should be a valid string")
    caikit_error(post(standalone, "rerank", {"query": "x", "documents": ["not an object"]}), 422,
                 "documents: Input should be a valid list of JSON objects")
    caikit_error(post(standalone, "embedding", "x", model="flan"), 404, "Model 'flan' not loaded")


def test_embedding_tasks_over_grpc(standalone):
    nlp = load("caikit_nlp")
    stub = nlp.grpc.NlpServiceStub(channel(standalone))
    md = [("mm-model-id", EMB_MODELS[1])]
    one = stub.EmbeddingTaskPredict(nlp.pb.EmbeddingTaskRequest(text="hello"), metadata=md)
    rest = post(standalone, "embedding", "hello", model=EMB_MODELS[1]).json()
    assert list(one.result.data_pyfloatsequence.values) == pytest.approx(rest["result"]["data"]["values"])
    many = stub.EmbeddingTasksPredict(nlp.pb.EmbeddingTasksRequest(texts=["a", "b"]), metadata=md)
    assert len(many.results.results) == 2
    sim = stub.SentenceSimilarityTaskPredict(nlp.pb.SentenceSimilarityTaskRequest(source_sentence="a", sentences=["a"]), metadata=md)
    assert sim.result.scores[0] == pytest.approx(1.0)
    req = nlp.pb.RerankTaskRequest(query="cats", top_n=1)
    for text in ("dogs", "cats"):
        req.documents.add().update({"text": text})
    ranked = stub.RerankTaskPredict(req, metadata=md)
    assert (ranked.result.query, ranked.result.scores[0].index, dict(ranked.result.scores[0].document)) == ("cats", 1, {"text": "cats"})
