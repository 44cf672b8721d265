"""The KServe v2 model every simulated OpenVINO / Triton model is, and each server's error text.

Each model is a small tabular classifier: input tensor `input` FP32 `[-1, 4]` (a batch of rows
of 4 features), output `output` FP32 `[-1, 3]` (class probabilities, softmax of a fixed linear
map seeded by the model name), version "1". Requests are validated as the servers do (input
name, datatype, shape, element count), with each server's status and message:

| problem | Triton 24.08 | OpenVINO Model Server 2024.4 |
|---|---|---|
| unknown model / version | 404 `Request for unknown model: 'm' is not found` | 404 `Model with requested name is not found` |
| input name, datatype, shape | 400 `[request id: <id_unknown>] ...` | 400 `Invalid input name` / `Invalid precision` / `Invalid shape` |

(Messages follow each server's wording as far as it is public; the simulator's are close, not
byte-identical.)
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass
from typing import Any

INPUT, OUTPUT = "input", "output"
FEATURES, CLASSES = 4, 3
VERSION = "1"
SERVERS = {
    "triton": {"name": "triton", "version": "2.49.0", "platform": "onnxruntime_onnx",
               "extensions": ["classification", "sequence", "model_repository", "model_repository(unload_dependents)",
                              "schedule_policy", "model_configuration", "system_shared_memory", "cuda_shared_memory",
                              "binary_tensor_data", "parameters", "statistics", "trace", "logging"]},
    "openvino": {"name": "OpenVINO Model Server", "version": "2024.4", "platform": "OpenVINO", "extensions": []},
}


class KServeError(Exception):
    def __init__(self, http: int, grpc: str, message: str) -> None:
        super().__init__(message)
        self.http = http
        self.grpc = grpc
        self.message = message


def _triton(kind: str, model: str, detail: str = "") -> KServeError:
    rid = "[request id: <id_unknown>] "
    return {
        "model": KServeError(404, "NOT_FOUND", f"Request for unknown model: '{model}' is not found"),
        "version": KServeError(404, "NOT_FOUND", f"Request for unknown model: '{model}' version {detail} is not found"),
        "name": KServeError(400, "INVALID_ARGUMENT", f"{rid}unexpected inference input '{detail}' for model '{model}'"),
        "output": KServeError(400, "INVALID_ARGUMENT", f"{rid}unexpected inference output '{detail}' for model '{model}'"),
        "datatype": KServeError(400, "INVALID_ARGUMENT",
                                f"{rid}inference input '{INPUT}' data-type is '{detail}', but model '{model}' expects 'FP32'"),
        "shape": KServeError(400, "INVALID_ARGUMENT",
                             f"{rid}unexpected shape for input '{INPUT}' for model '{model}'. Expected [-1,{FEATURES}], got {detail}"),
        "count": KServeError(400, "INVALID_ARGUMENT", f"{rid}unexpected number of elements for input '{INPUT}': {detail}"),
        "missing": KServeError(400, "INVALID_ARGUMENT", f"{rid}expected 1 inputs but got 0 inputs for model '{model}'"),
        "body": KServeError(400, "INVALID_ARGUMENT", f"failed to parse the request JSON buffer: {detail}"),
    }[kind]


def _openvino(kind: str, model: str, detail: str = "") -> KServeError:
    return {
        "model": KServeError(404, "NOT_FOUND", "Model with requested name is not found"),
        "version": KServeError(404, "NOT_FOUND", "Model with requested version is not found"),
        "name": KServeError(400, "INVALID_ARGUMENT", f"Invalid input name - Unexpected input: {detail}"),
        "output": KServeError(400, "INVALID_ARGUMENT", f"Invalid output name - Unexpected output: {detail}"),
        "datatype": KServeError(400, "INVALID_ARGUMENT", f"Invalid precision - Expected: FP32; Actual: {detail}"),
        "shape": KServeError(400, "INVALID_ARGUMENT", f"Invalid input shape - Expected: (-1,{FEATURES}); Actual: {detail}"),
        "count": KServeError(400, "INVALID_ARGUMENT", f"Invalid number of elements: {detail}"),
        "missing": KServeError(400, "INVALID_ARGUMENT", "Invalid number of inputs - Expected: 1; Actual: 0"),
        "body": KServeError(400, "INVALID_ARGUMENT", f"Invalid JSON in request body: {detail}"),
    }[kind]


def error(server: str, kind: str, model: str, detail: str = "") -> KServeError:
    return (_triton if server == "triton" else _openvino)(kind, model, detail)


@dataclass(frozen=True)
class Tensor:
    name: str
    datatype: str
    shape: list[int]
    values: list[float]


def check_model(server: str, models: list[str], model: str, version: str | None) -> None:
    if model not in models:
        raise error(server, "model", model)
    if version not in (None, "", VERSION):
        raise error(server, "version", model, version)


def metadata(server: str, model: str) -> dict[str, Any]:
    return {"name": model, "versions": [VERSION], "platform": SERVERS[server]["platform"],
            "inputs": [{"name": INPUT, "datatype": "FP32", "shape": [-1, FEATURES]}],
            "outputs": [{"name": OUTPUT, "datatype": "FP32", "shape": [-1, CLASSES]}]}


def validate(server: str, model: str, inputs: list[Tensor], outputs: list[str]) -> Tensor:
    """The one input tensor of a valid request; raises KServeError like the server would."""
    if not inputs:
        raise error(server, "missing", model)
    for t in inputs:
        if t.name != INPUT:
            raise error(server, "name", model, t.name)
    t = inputs[0]
    if t.datatype != "FP32":
        raise error(server, "datatype", model, t.datatype)
    if len(t.shape) != 2 or t.shape[1] != FEATURES or t.shape[0] < 1:
        raise error(server, "shape", model, "[" + ",".join(map(str, t.shape)) + "]")
    if len(t.values) != t.shape[0] * FEATURES:
        raise error(server, "count", model, f"shape {t.shape} needs {t.shape[0] * FEATURES}, got {len(t.values)}")
    for o in outputs:
        if o != OUTPUT:
            raise error(server, "output", model, o)
    return t


def infer(model: str, t: Tensor) -> list[float]:
    """Class probabilities, row by row (flattened [rows, 3])."""
    seed = zlib.crc32(model.encode())
    weights = [((seed >> (k % 29)) % 17 - 8) / 4.0 for k in range(CLASSES * (FEATURES + 1))]
    out: list[float] = []
    for r in range(t.shape[0]):
        row = t.values[r * FEATURES:(r + 1) * FEATURES]
        logits = [sum(weights[c * (FEATURES + 1) + k] * row[k] for k in range(FEATURES)) + weights[c * (FEATURES + 1) + FEATURES]
                  for c in range(CLASSES)]
        m = max(logits)
        exps = [math.exp(x - m) for x in logits]
        s = sum(exps)
        out.extend(e / s for e in exps)
    return out


def flatten(data: Any) -> list[float]:
    """KServe v2 JSON `data`: a flat list, or nested lists in row-major order."""
    if isinstance(data, list):
        out: list[float] = []
        for d in data:
            out.extend(flatten(d) if isinstance(d, list) else [d])
        return out
    return [data]


def fp32_bytes(values: list[float]) -> bytes:
    return struct.pack(f"<{len(values)}f", *values)


def fp32_values(raw: bytes) -> list[float]:
    return list(struct.unpack(f"<{len(raw) // 4}f", raw[: len(raw) // 4 * 4]))
