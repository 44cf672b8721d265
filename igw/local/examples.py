"""The "Try it" part of the `igw up` summary: each runtime's own request, ready to run.

One example per runtime API the stack serves, sent to the listener whose routes reach a pool of
that runtime: vLLM's OpenAI chat completion (curl and the openai client), a Caikit task (the
seed's streaming text generation, or an embedding), a KServe v2 infer with the simulated model's
tensor, and for gRPC pools a short Python call with the stubs generated from our .proto files
(`vllm_simulator.protocols.stubs`), an external model's task on its own base URL. Runtime
requests carry `Authorization: Bearer $API_KEY`, as
the seed's calls do; the pickers check it when the stack enables API keys.
"""

from __future__ import annotations

import json
from typing import Any

AUTH = '-H "Authorization: Bearer ${API_KEY}"'
GRPC_CALLS = {
    # (runtime): (api of stubs.load, stub class, method, request expression, metadata)
    "tgis": ("fmaas", "GenerationServiceStub", "Generate",
             'api.pb.BatchedGenerationRequest(requests=[api.pb.GenerationRequest(text="At what temperature does Nitrogen boil?")])'),
    "caikit-standalone": ("caikit_nlp", "NlpServiceStub", "EmbeddingTaskPredict", 'api.pb.EmbeddingTaskRequest(text="Hello")'),
    "caikit-tgis": ("caikit_nlp", "NlpServiceStub", "TextGenerationTaskPredict", 'api.pb.TextGenerationTaskRequest(text="Hello")'),
    "triton": ("kserve", "GRPCInferenceServiceStub", "ModelMetadata", 'api.pb.ModelMetadataRequest(name="{model}")'),
    "openvino": ("kserve", "GRPCInferenceServiceStub", "ModelMetadata", 'api.pb.ModelMetadataRequest(name="{model}")'),
}


def _pool_listeners(state: dict[str, Any]) -> dict[str, int]:
    """pool -> the local port of the first listener whose routes reach it."""
    out: dict[str, int] = {}
    for lst in state.get("listeners") or []:
        for _, _, backends in lst.get("routes") or []:
            for part in str(backends).split(","):
                pool = part.strip().split("=")[0]
                if pool and pool != "-":
                    out.setdefault(pool, lst["local_port"])
    return out


def _pool_runtimes(state: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    """pool -> (runtime, serves gRPC) from its replicas' process metadata and its routes."""
    procs = state.get("processes") or {}
    out = {}
    for name, pool in (state.get("pools") or {}).items():
        meta = next((procs[r] for r in pool.get("replicas") or [] if r in procs), {})
        out[name] = (meta.get("runtime", "vllm"), pool.get("app_protocol") == "kubernetes.io/h2c")
    return out


def _curl(url: str, body: dict[str, Any], stream: bool = False) -> list[str]:
    return [f"    curl -s{'N' if stream else ''} {url} {AUTH} -H 'content-type: application/json' \\",
            f"      -d '{json.dumps(body)}'"]


def _grpc(runtime: str, port: int, model: str) -> list[str]:
    """A Python one-liner (shell-safe: no heredoc to terminate) calling the runtime's method."""
    api, stub, method, request = GRPC_CALLS[runtime]
    md = '[("authorization", "Bearer " + os.environ.get("API_KEY", ""))' + (f', ("mm-model-id", "{model}")]' if api == "caikit_nlp" else "]")
    return [
        f"    uv run python -c 'import os, grpc; from vllm_simulator.protocols.stubs import load; api = load(\"{api}\"); \\",
        f'      stub = api.grpc.{stub}(grpc.insecure_channel("127.0.0.1:{port}")); \\',
        f"      print(stub.{method}({request.format(model=model)}, metadata={md}))'",
    ]


def _vllm(url: str, model: str) -> list[str]:
    return [
        f"    curl -s {url}/v1/chat/completions -H 'content-type: application/json' \\",
        f"      -d '{{\"model\": \"{model}\", \"messages\": [{{\"role\": \"user\", \"content\": \"Hello\"}}], \"max_tokens\": 32}}'",
        "",
        "    from openai import OpenAI",
        f"    client = OpenAI(base_url=\"{url}/v1\", api_key=\"unused\")",
        f"    r = client.chat.completions.create(model=\"{model}\", messages=[{{\"role\": \"user\", \"content\": \"Hello\"}}], max_tokens=32)",
        "    print(r.choices[0].message.content)",
    ]


def _rest(runtime: str, url: str, model: str) -> list[str]:
    if runtime == "caikit-tgis":
        return _curl(f"{url}/api/v1/task/server-streaming-text-generation",
                     {"model_id": model, "inputs": "At what temperature does water boil?"}, stream=True)
    if runtime == "caikit-standalone":
        return _curl(f"{url}/api/v1/task/embedding", {"model_id": model, "inputs": "Hello"})
    return _curl(f"{url}/v2/models/{model}/infer", {"model_name": model, "inputs": [
        {"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]})


def _external_path(state: dict[str, Any], pool: str) -> str | None:
    """The client path of an external model's route (``= /openai-chat/v1/chat/completions``)."""
    for lst in state.get("listeners") or []:
        for match, _, backends in lst.get("routes") or []:
            if str(backends).split("=")[0].strip() == pool and str(match).startswith("= ") and "/served-models/" not in match:
                return str(match)[2:].strip()
    return None


def _external(url: str, path: str, model: str) -> list[str]:
    """An external model's task: chat, completions or embeddings, on the endpoint's own base URL."""
    base = path.rsplit("/v1/", 1)[0] + "/v1"
    if path.endswith("/embeddings"):
        body: dict[str, Any] = {"model": model, "input": "Hello"}
        call = f'client.embeddings.create(model="{model}", input="Hello").data[0].embedding[:4]'
    elif path.endswith("/chat/completions"):
        body = {"model": model, "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 32}
        call = (f'client.chat.completions.create(model="{model}", messages=[{{"role": "user", "content": "Hello"}}], '
                "max_tokens=32).choices[0].message.content")
    else:
        body = {"model": model, "prompt": "Hello", "max_tokens": 32}
        call = f'client.completions.create(model="{model}", prompt="Hello", max_tokens=32).choices[0].text'
    return [*_curl(f"{url}{path}", body), "",
            "    import os; from openai import OpenAI",
            f'    client = OpenAI(base_url="{url}{base}", api_key=os.environ["API_KEY"])',
            f"    print({call})"]


def try_it(state: dict[str, Any]) -> list[str]:
    listeners = _pool_listeners(state)
    runtimes = _pool_runtimes(state)
    models: dict[str, list[str]] = {}
    for m in state.get("models") or []:
        models.setdefault(m["pool"], []).append(m["name"])
    split_first = {m["pool"]: m["name"] for m in reversed(state.get("models") or []) if m["targets"]}
    lines = ["  Try it:"]
    shown: set[tuple[str, bool]] = set()
    for pool, (runtime, grpc) in runtimes.items():
        if pool not in listeners or (runtime, grpc) in shown or not models.get(pool):
            continue
        shown.add((runtime, grpc))
        model = split_first.get(pool) or models[pool][0]
        port = listeners[pool]
        url = f"http://127.0.0.1:{port}"
        title = f"    # {runtime}{' gRPC' if grpc else ''} ({pool})" + (f": model {model!r}" if runtime != "vllm" else "")
        external = _external_path(state, pool) if runtime == "external" else None
        if runtime == "external" and external is None:
            continue
        body = (_grpc(runtime, port, model) if grpc else _vllm(url, model) if runtime == "vllm"
                else _external(url, external, model) if external else _rest(runtime, url, model))
        lines += [title, *body, ""]
    return lines if len(lines) > 1 else []
