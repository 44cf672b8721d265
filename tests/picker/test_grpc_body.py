"""gRPC requests in the picker: the model read from (and rewritten in) the runtime's own place,
checked against messages built with the runtimes' generated stubs; malformed frames are 400s and
rejections carry a gRPC status."""

from __future__ import annotations

import pytest

from endpoint_picker import grpc_body
from endpoint_picker import protocol as P
from endpoint_picker.errors import BadRequest
from endpoint_picker.requests import parse_request
from vllm_simulator.protocols.stubs import load

GRPC = {"content-type": "application/grpc"}
TGIS = "/fmaas.GenerationService/Generate"
INFER = "/inference.GRPCInferenceService/ModelInfer"


def frame(msg, flag: int = 0) -> bytes:
    data = msg.SerializeToString()
    return bytes([flag]) + len(data).to_bytes(4, "big") + data


def unframe(body: bytes, cls):
    assert body[0] == 0 and int.from_bytes(body[1:5], "big") == len(body) - 5
    return cls.FromString(body[5:])


def tgis_request(model: str = "google/flan-t5-small"):
    pb = load("fmaas").pb
    return pb.BatchedGenerationRequest(model_id=model, requests=[pb.GenerationRequest(text="At what temperature?")],
                                       params=pb.Parameters(stopping=pb.StoppingCriteria(max_new_tokens=7)))


def infer_request(model: str = "iris"):
    pb = load("kserve").pb
    tensor = pb.ModelInferRequest.InferInputTensor(name="input", datatype="FP32", shape=[1, 4],
                                                   contents=pb.InferTensorContents(fp32_contents=[1, 2, 3, 4]))
    return pb.ModelInferRequest(model_name=model, model_version="1", id="r1", inputs=[tensor])


def test_model_is_read_from_the_message_field_the_api_defines():
    assert parse_request(TGIS, GRPC, frame(tgis_request())).model == "google/flan-t5-small"
    assert parse_request(INFER, GRPC, frame(infer_request())).model == "iris"
    ready = load("kserve").pb.ModelReadyRequest(name="iris-b", version="1")
    assert parse_request("/inference.GRPCInferenceService/ModelReady", GRPC, frame(ready)).model == "iris-b"
    caikit = load("caikit_nlp").pb.EmbeddingTaskRequest(text="hello")
    parsed = parse_request("/caikit.runtime.Nlp.NlpService/EmbeddingTaskPredict", {**GRPC, "mm-model-id": "m"}, frame(caikit))
    assert (parsed.model, parsed.model_key) == ("m", "mm-model-id")


def test_no_model_field_leaves_the_model_unknown():
    # TGIS serves one model and ignores model_id: the seed's call sends none
    pb = load("fmaas").pb
    assert parse_request(TGIS, GRPC, frame(pb.BatchedGenerationRequest(requests=[pb.GenerationRequest(text="x")]))).model is None
    assert parse_request("/inference.GRPCInferenceService/ServerMetadata", GRPC, b"\x00\x00\x00\x00\x00").model is None


@pytest.mark.parametrize("make, path, cls_api, cls", [
    (tgis_request, TGIS, "fmaas", "BatchedGenerationRequest"),
    (infer_request, INFER, "kserve", "ModelInferRequest"),
])
def test_rewrite_changes_only_the_model(make, path, cls_api, cls):
    original = make()
    body = grpc_body.replace_model(frame(original), "a-much-longer-target-model-name")
    rewritten = unframe(body, getattr(load(cls_api).pb, cls))
    field = "model_id" if cls_api == "fmaas" else "model_name"
    assert getattr(rewritten, field) == "a-much-longer-target-model-name"
    setattr(rewritten, field, getattr(original, field))
    assert rewritten == original
    assert grpc_body.read_model(body) == "a-much-longer-target-model-name"


def test_rewrite_replaces_repeated_values_and_adds_a_missing_one():
    msg = b"\x0a\x01a\x12\x01v\x0a\x01b"  # field 1 twice (the last wins for protobuf readers)
    body = b"\x00" + len(msg).to_bytes(4, "big") + msg
    assert grpc_body.read_model(body) == "b"
    assert grpc_body.replace_model(body, "c") == b"\x00\x00\x00\x00\x06\x0a\x01c\x12\x01v"
    assert grpc_body.replace_model(b"\x00\x00\x00\x00\x00", "m") == b"\x00\x00\x00\x00\x03\x0a\x01m"


def test_compressed_messages_stay_opaque():
    body = frame(tgis_request(), flag=1)
    assert grpc_body.read_model(body) is None
    assert grpc_body.replace_model(body, "other") == body


@pytest.mark.parametrize("body, why", [
    (b"\x00\x00\x00", "shorter than a gRPC message prefix"),
    (b"\x00\x00\x00\x00\x09\x0a\x04", "truncated gRPC message"),
    (b"\x00\x00\x00\x00\x03\x0a\x05a", "truncated field"),
    (b"\x00\x00\x00\x00\x01\x0b", "unsupported wire type 3"),
    (b"\x00\x00\x00\x00\x03\x0a\x01\xff", "field 1 is not UTF-8 text"),
])
def test_malformed_messages_are_bad_requests(body, why):
    with pytest.raises(BadRequest) as err:
        parse_request(TGIS, GRPC, body)
    assert err.value.message == f"request is not a well-formed gRPC message: {why}"


@pytest.mark.parametrize("status, grpc", [(400, 3), (401, 16), (404, 5), (429, 8), (503, 14), (500, 13), (418, 2)])
def test_rejections_of_grpc_requests_carry_a_grpc_status(status, grpc):
    resp = P.immediate_response(status, "r", "m", {"retry-after": "1"}, grpc=True).immediate_response
    assert resp.status.code == status and resp.grpc_status.status == grpc
    keys = {h.header.key for h in resp.headers.set_headers}
    assert "content-type" not in keys and {"retry-after", P.DROPPED_REASON_HEADER} <= keys
    assert not P.immediate_response(status, "r", "m").immediate_response.HasField("grpc_status")
