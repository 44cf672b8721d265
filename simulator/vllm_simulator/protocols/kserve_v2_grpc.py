"""KServe v2 gRPC: inference.GRPCInferenceService for the OpenVINO Model Server and Triton runtimes.

ServerLive, ServerReady, ServerMetadata, ModelReady, ModelMetadata and ModelInfer, with the
same models, validation and error text as the REST API (kserve_model.py) and gRPC status codes
NOT_FOUND / INVALID_ARGUMENT. ModelInfer takes its input from `contents.fp32_contents` or
`raw_input_contents` (little-endian float32) and answers in the same form (raw in, raw out).
"""

from __future__ import annotations

import time

import grpc

from . import engine_jobs
from . import kserve_model as M
from .base import GRPC_FOR_HTTP, run_job
from .kserve_model import KServeError
from .stubs import load


class InferenceServicer:
    def __init__(self, api) -> None:
        self.api = api
        self.pb = load("kserve").pb

    async def _fail(self, context, e: KServeError) -> None:
        await context.abort(grpc.StatusCode[e.grpc], e.message)

    async def ServerLive(self, request, context):
        await self.api.grpc_preamble(context)
        return self.pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request, context):
        await self.api.grpc_preamble(context)
        return self.pb.ServerReadyResponse(ready=not self.api.replica.starting())

    async def ServerMetadata(self, request, context):
        await self.api.grpc_preamble(context)
        s = M.SERVERS[self.api.runtime]
        return self.pb.ServerMetadataResponse(name=s["name"], version=s["version"], extensions=s["extensions"])

    async def ModelReady(self, request, context):
        await self.api.grpc_preamble(context, request.name)
        try:
            M.check_model(self.api.runtime, self.api.models, request.name, request.version)
        except KServeError as e:
            await self._fail(context, e)
        return self.pb.ModelReadyResponse(ready=not self.api.replica.starting())

    async def ModelMetadata(self, request, context):
        await self.api.grpc_preamble(context, request.name)
        try:
            M.check_model(self.api.runtime, self.api.models, request.name, request.version)
        except KServeError as e:
            await self._fail(context, e)
        md = M.metadata(self.api.runtime, request.name)
        T = self.pb.ModelMetadataResponse.TensorMetadata
        return self.pb.ModelMetadataResponse(
            name=md["name"], versions=md["versions"], platform=md["platform"],
            inputs=[T(**t) for t in md["inputs"]], outputs=[T(**t) for t in md["outputs"]])

    def _tensors(self, request) -> tuple[list[M.Tensor], bool]:
        raw = list(request.raw_input_contents)
        out = []
        for i, t in enumerate(request.inputs):
            values = M.fp32_values(raw[i]) if raw and i < len(raw) else list(t.contents.fp32_contents)
            out.append(M.Tensor(t.name, t.datatype, list(t.shape), values))
        return out, bool(raw)

    async def ModelInfer(self, request, context):
        api = self.api
        started = time.monotonic()
        await api.grpc_preamble(context, request.model_name)
        fault = api.fault()
        if fault is not None:
            await context.abort(grpc.StatusCode[GRPC_FOR_HTTP.get(fault[0], "INTERNAL")], fault[1])
        model = request.model_name
        try:
            M.check_model(api.runtime, api.models, model, request.model_version)
            inputs, raw = self._tensors(request)
            tensor = M.validate(api.runtime, model, inputs, [o.name for o in request.outputs])
        except KServeError as e:
            api.record(model, "gRPC", False, started)
            await self._fail(context, e)
        try:
            await run_job(lambda done: engine_jobs.prefill(api.replica, len(tensor.values), done))
        except RuntimeError as e:
            api.record(model, "gRPC", False, started)
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        api.record(model, "gRPC", True, started)
        values = M.infer(model, tensor)
        out = self.pb.ModelInferResponse.InferOutputTensor(name=M.OUTPUT, datatype="FP32", shape=[tensor.shape[0], M.CLASSES])
        resp = self.pb.ModelInferResponse(model_name=model, model_version=M.VERSION, id=request.id)
        if raw:
            resp.raw_output_contents.append(M.fp32_bytes(values))
        else:
            out.contents.fp32_contents.extend(values)
        resp.outputs.append(out)
        return resp


def add_servicer(api, server) -> None:
    load("kserve").grpc.add_GRPCInferenceServiceServicer_to_server(InferenceServicer(api), server)
