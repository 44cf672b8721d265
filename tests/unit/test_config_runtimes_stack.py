"""Seed 003's runtimes in stack config: pools per protocol, extra models, per-runtime served-model
paths, what GKE's gateway cannot do (exact messages naming the YAML path), and what the committed
`runtimes` stack renders for each runtime."""

from __future__ import annotations

import copy
from typing import Callable

import pytest

from components.builders import endpoints
from components.builders.model_server import MODELS_ANNOTATION, RUNTIME_ANNOTATION, deployment, ovms_configmap
from components.builders.routes import httproute_manifest
from components.catalog.runtime_preset import for_protocol
from components.catalog.runtimes import PRESETS, resolve_preset
from components.config import ConfigError, config_values_from_stack_file
from components.config.exposure import route_api_paths
from components.config.runtime_rules import GRPC_ROUTE_UNSUPPORTED, invocation_paths, pool_preset
from components.config.serving import ModelServerConfig
from components.stack_config import parse_stack_config
from igw.stackfile import read_stack

RUNTIMES, _ = config_values_from_stack_file({"config": read_stack("runtimes")})


def values(mutate: Callable[[dict], object] = lambda v: None) -> dict:
    v = copy.deepcopy(RUNTIMES)
    mutate(v)
    return v


def problems(mutate: Callable[[dict], object]) -> list[str]:
    with pytest.raises(ConfigError) as err:
        parse_stack_config(values(mutate))
    return err.value.problems


def pool(v: dict, name: str) -> dict:
    return next(p for p in v["pools"] if p["name"] == name)


def gw(v: dict, name: str) -> dict:
    return next(g for g in v["gateways"] if g["name"] == name)


CFG = parse_stack_config(values())


def route_of(gateway: str, route: str) -> dict:
    g = next(g for g in CFG.gateways if g.name == gateway)
    r = next(r for r in g.routes if r.name == route)
    return httproute_manifest(g, r, CFG.models, "ns", api=[p.route for p in route_api_paths(CFG, r)],
                              invocations=invocation_paths(CFG, r))


# -- pools: one protocol each ---------------------------------------------------------------------
def test_a_pool_serves_one_protocol_of_its_runtime():
    assert pool_preset(CFG, "triton-iris").protocol == "http" and pool_preset(CFG, "triton-iris").target_port == 8000
    grpc = pool_preset(CFG, "triton-iris-grpc")
    assert (grpc.protocol, grpc.target_port, grpc.app_protocol) == ("grpc", 8001, "kubernetes.io/h2c")
    assert pool_preset(CFG, "tgis-flan-small").protocol == "grpc"  # the runtime's own
    assert for_protocol(PRESETS["vllm"], None) is PRESETS["vllm"]
    with pytest.raises(ValueError, match="runtime 'vllm' has no gRPC port"):
        for_protocol(PRESETS["vllm"], "grpc")


def test_grpc_pool_without_a_grpc_port_is_refused():
    def mutate(v):
        v["model_servers"][0]["runtime_overrides"] = {"grpc_port": None}
        v["model_servers"].append({"name": "chat", "model": "m", "hf_token": False})
        v["pools"].append({"name": "chat", "model_server": "chat", "protocol": "grpc"})
    assert problems(mutate) == [
        "pools[8].protocol: 'grpc' but runtime 'vllm' (model_servers[6]) has no gRPC port; use protocol: http or "
        "set model_servers[6].runtime_overrides.grpc_port"
    ]


def test_http_pool_of_a_grpc_only_runtime_is_refused():
    assert problems(lambda v: pool(v, "tgis-flan-small").update(protocol="http")) == [
        "pools[3].protocol: runtime 'tgis' has no http client API (it serves /fmaas.GenerationService/Generate, "
        "/fmaas.GenerationService/GenerateStream, /fmaas.GenerationService/Tokenize, /fmaas.GenerationService/ModelInfo); "
        "use protocol: grpc"
    ]


def test_routes_expose_only_their_pools_protocol():
    grpc = [p.path for p in route_api_paths(CFG, CFG.gateways[3].routes[1])]
    assert grpc == [f"/inference.GRPCInferenceService/{m}" for m in ("ModelInfer", "ModelReady", "ModelMetadata", "ServerMetadata")]
    rest = route_api_paths(CFG, CFG.gateways[3].routes[0])
    assert {p.protocol for p in rest} == {"http"}


# -- what GKE's gateway cannot do ------------------------------------------------------------------
def test_grpcroute_is_refused_with_the_reason():
    assert problems(lambda v: gw(v, "triton")["routes"][1].update(kind="GRPCRoute")) == [
        f"gateways[3].routes[1].kind: {GRPC_ROUTE_UNSUPPORTED}"
    ]
    assert "GoogleCloudPlatform/gke-gateway-api#31" in GRPC_ROUTE_UNSUPPORTED


def test_a_route_mixing_rest_and_grpc_pools_is_refused():
    def mutate(v):
        gw(v, "triton")["routes"] = [{"name": "both", "backends": [{"pool": "triton-iris"}, {"pool": "triton-iris-grpc"}]}]
    assert problems(mutate) == [
        "gateways[3].routes[0].backends: the pools speak different protocols (triton-iris (http), triton-iris-grpc "
        "(grpc)); an HTTPRoute's backends must all be http or all grpc: use one route per protocol"
    ]


def test_grpc_pools_take_no_invoke_prefix_and_no_invocations_path():
    assert problems(lambda v: gw(v, "triton")["routes"][1].update(invoke_route_prefix="/*")) == [
        "gateways[3].routes[1].invoke_route_prefix: pool 'triton-iris-grpc' serves gRPC, whose clients call "
        "/<package.Service>/<Method> and cannot add an /invoke prefix; route gRPC pools with a path_prefix route"
    ]
    assert problems(lambda v: gw(v, "text")["routes"][1].update(invocations_path="/x")) == [
        "gateways[0].routes[1].invocations_path: pool 'tgis-flan-small' serves gRPC; its served models are addressed "
        "with the x-deployed-model-id header, not a /served-models/<name>/invocations path: remove invocations_path"
    ]


def test_model_armor_would_not_screen_these_runtimes():
    def mutate(v):
        v["model_armor"] = {"templates": [{"id": "t"}], "guards": [{"model": "default", "prompt_template": "t",
                                                                    "response_template": "t"}]}
        for g in v["gateways"][1:]:
            g["model_armor"] = False
    assert problems(mutate) == [
        "gateways[0].model_armor: route 'caikit' reaches caikit-tgis (caikit, http); Model Armor on GKE's gateway "
        "screens only OpenAI-style requests, so these would pass unscreened. Set gateways[0].model_armor: false, or "
        "serve this route from a gateway without Model Armor",
        "gateways[0].model_armor: route 'tgis' reaches tgis (tgis-grpc, grpc); Model Armor on GKE's gateway screens "
        "only OpenAI-style requests, so these would pass unscreened. Set gateways[0].model_armor: false, or serve this "
        "route from a gateway without Model Armor",
    ]


# -- extra models -----------------------------------------------------------------------------------
@pytest.mark.parametrize("runtime, instead", [("vllm", "serve more models as lora_adapters"),
                                              ("tgis", "add a model server (and pool) per model")])
def test_extra_models_need_a_multi_model_runtime(runtime, instead):
    with pytest.raises(ValueError) as err:
        ModelServerConfig(name="s", model="m", runtime=runtime, extra_models=["n"])
    assert (f"extra_models: runtime {runtime!r} serves one model per server; {instead} (runtimes that load several "
            "models: caikit-tgis, caikit-standalone, openvino, triton)") in str(err.value)


def test_extra_models_are_served_and_listed_once():
    s = ModelServerConfig(name="s", model="a", runtime="triton", extra_models=["b"])
    assert s.served_names == {"a", "b"}
    with pytest.raises(ValueError, match="extra_models: 'a' is listed twice"):
        ModelServerConfig(name="s", model="a", runtime="triton", extra_models=["a"])


def test_multi_model_args_and_pod_metadata():
    triton = next(s for s in CFG.model_servers if s.runtime == "triton")
    args = resolve_preset(triton).build_args(triton)
    assert args[:4] == ["--model-repository=/mnt/models", "--model-control-mode=explicit",
                        "--load-model=iris-onnx", "--load-model=iris-onnx-v2"]
    ov = next(s for s in CFG.model_servers if s.runtime == "openvino")
    assert resolve_preset(ov).build_args(ov)[0] == "--config_path=/etc/ovms/config.json"
    assert ovms_configmap(ov, "ns")["data"]["config.json"].replace(" ", "").replace("\n", "") == (
        '{"model_config_list":[{"config":{"name":"iris-ir","base_path":"/mnt/models/iris-ir"}},'
        '{"config":{"name":"iris-ir-int8","base_path":"/mnt/models/iris-ir-int8"}}]}')
    single = ModelServerConfig(name="s", model="resnet", runtime="openvino")
    assert resolve_preset(single).build_args(single)[:2] == ["--model_name=resnet", "--model_path=/mnt/models"]
    dep = deployment(ov, "ns", resolve_preset(ov), None, 130, None, None)
    assert dep["spec"]["template"]["metadata"]["annotations"][RUNTIME_ANNOTATION] == "openvino"
    assert dep["spec"]["template"]["metadata"]["annotations"][MODELS_ANNOTATION] == "iris-ir,iris-ir-int8"
    assert {"name": "ovms-config", "configMap": {"name": "openvino-iris-ovms-config"}} in dep["spec"]["template"]["spec"]["volumes"]


# -- routes ----------------------------------------------------------------------------------------
def _served_rules(route: dict) -> dict[str, str]:
    out = {}
    for rule in route["spec"]["rules"]:
        path = rule["matches"][0]["path"]["value"]
        if path.startswith("/served-models/"):
            out[path] = next(f["urlRewrite"]["path"]["replaceFullPath"] for f in rule["filters"] if f["type"] == "URLRewrite")
    return out


def test_served_model_paths_land_on_each_runtimes_own_inference_path():
    assert _served_rules(route_of("triton", "rest")) == {
        "/served-models/iris-onnx/invocations": "/v2/models/iris-onnx/infer",
        "/served-models/iris-onnx-v2/invocations": "/v2/models/iris-onnx-v2/infer",
    }
    assert set(_served_rules(route_of("text", "caikit")).values()) == {"/api/v1/task/text-generation"}
    assert set(_served_rules(route_of("embeddings", "rest")).values()) == {"/api/v1/task/embedding"}


def test_grpc_routes_match_exact_methods_and_have_no_served_model_path():
    route = route_of("triton", "grpc")
    assert _served_rules(route) == {}
    assert [m["path"] for m in route["spec"]["rules"][-1]["matches"]] == [
        {"type": "Exact", "value": f"/inference.GRPCInferenceService/{m}"}
        for m in ("ModelInfer", "ModelReady", "ModelMetadata", "ServerMetadata")
    ]
    tgis = route_of("text", "tgis")
    assert tgis["spec"]["rules"][-1]["backendRefs"] == [
        {"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": "tgis-flan-small", "weight": 50},
        {"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": "tgis-flan-base", "weight": 50},
    ]


# -- what users call -------------------------------------------------------------------------------
def test_each_runtime_gets_its_own_example_call():
    eps = endpoints.model_endpoints(CFG, {g.name: "203.0.113.7" for g in CFG.gateways})
    assert eps["flan"]["curl"] == (
        "curl -sS -X POST http://203.0.113.7/api/v1/task/text-generation -H 'Content-Type: application/json' "
        "-H \"Authorization: Bearer ${API_KEY}\" -d '{\"model_id\":\"flan\",\"inputs\":\"Say hello.\"}'")
    assert eps["iris"]["url"] == "http://203.0.113.7/v2/models/iris/infer"
    assert '"inputs":[{"name":"<input name>"' in eps["iris"]["curl"]
    assert eps["google/flan-t5-small"]["curl"] == (
        "grpcurl -plaintext -proto generation.proto -H \"Authorization: Bearer ${API_KEY}\" "
        "-d '{\"requests\":[{\"text\":\"Say hello.\"}]}' 203.0.113.7:80 fmaas.GenerationService/Generate")
    assert eps["embeddings-grpc"]["curl"] == (
        "grpcurl -plaintext -proto caikit_runtime_Nlp.proto -H \"Authorization: Bearer ${API_KEY}\" "
        "-H 'mm-model-id: embeddings-grpc' -d '{\"text\":\"Say hello.\"}' 203.0.113.7:80 "
        "caikit.runtime.Nlp.NlpService/EmbeddingTaskPredict")
    served = endpoints.served_model_endpoints(CFG, {g.name: "203.0.113.7" for g in CFG.gateways})
    assert served["triton/iris-onnx-v2"]["url"] == "http://203.0.113.7/served-models/iris-onnx-v2/invocations"
    assert "-H 'x-deployed-model-id: iris-onnx-grpc'" in served["triton/iris-onnx-grpc"]["curl"]


def test_picker_knows_where_a_served_model_request_carries_its_model():
    from components.builders.inference_pool import picker_config

    for pool_name, api in (("caikit-flan", "caikit"), ("triton-iris", "kserve-v2"), ("tgis-flan-small", "tgis-grpc")):
        pool = CFG.pool(pool_name)
        server = CFG.model_server(pool.model_server)
        assert picker_config(pool, server, pool_preset(CFG, pool_name), CFG.models_of_pool(pool_name))["models"]["api"] == api
    vllm = ModelServerConfig(name="s", model="m", hf_token=False)
    assert "api" not in picker_config(CFG.pools[0], vllm, PRESETS["vllm"], [])["models"]  # openai: the default
