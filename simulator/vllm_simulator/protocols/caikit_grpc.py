"""Caikit's gRPC services: caikit.runtime.Nlp.NlpService and caikit.runtime.info.InfoService.

As caikit's GlobalPredictServicer: the model comes from the `mm-model-id` request metadata;
a missing one is INVALID_ARGUMENT, an unknown one NOT_FOUND ("Model 'x' not loaded"); a task
the runtime does not serve is UNIMPLEMENTED (caikit only generates RPCs for the modules it
loaded). Results and their computation are shared with the REST API (caikit_tasks.py).
"""

from __future__ import annotations

from typing import Any, AsyncIterator

import grpc
from google.protobuf import json_format

from . import caikit_tasks as T
from . import engine_jobs
from .base import GRPC_FOR_HTTP, run_job, stream_job
from .caikit_tasks import CaikitError
from .stubs import load

MODEL_HEADER = "mm-model-id"


class _Servicer:
    def __init__(self, api) -> None:
        self.api = api
        self.replica = api.replica
        self.runtime = api.runtime
        self.pb = load("caikit_nlp").pb
        self.data = load("caikit_data").pb
        self.nlp_data = load("caikit_nlp_data").pb
        self.common = load("caikit_common").pb

    def producer(self):
        return self.common.ProducerId(**T.producer(self.runtime))

    async def begin(self, context, task: str) -> str:
        """Checks shared by every task RPC; returns the model id or aborts the call."""
        if task not in T.TASKS[self.runtime]:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not implemented!")
        model = dict(context.invocation_metadata() or ()).get(MODEL_HEADER)
        await self.api.grpc_preamble(context, model)
        fault = self.api.fault()
        if fault is not None:
            await context.abort(grpc.StatusCode[GRPC_FOR_HTTP.get(fault[0], "INTERNAL")], fault[1])
        if not model:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"Could not read required metadata: {MODEL_HEADER}")
        try:
            return T.check_model(self.replica, model)
        except CaikitError as e:
            await context.abort(grpc.StatusCode[e.grpc], e.message)
        raise AssertionError("unreachable")

    async def forward(self, context, tokens: int) -> None:
        try:
            await run_job(lambda done: engine_jobs.prefill(self.replica, tokens, done))
        except RuntimeError as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))

    def vector(self, values: list[float]):
        return self.common.Vector1D(data_pyfloatsequence=self.common.PyFloatSequence(values=values))


class NlpServicer(_Servicer):
    """caikit.runtime.Nlp.NlpService: text generation (Caikit+TGIS) and the embedding tasks
    (Caikit standalone)."""

    # -- text generation ------------------------------------------------------------------------
    def _generation(self, request) -> T.GenerationParams:
        fields = {f.name: v for f, v in request.ListFields()}
        return T.generation_params(fields)

    async def TextGenerationTaskPredict(self, request, context):
        await self.begin(context, "text-generation")
        try:
            gp = self._generation(request)
            problem = engine_jobs.fits(self.replica, T.input_tokens(request.text), gp.max_new_tokens)
            if problem:
                raise CaikitError(400, "INVALID_ARGUMENT", problem)
        except CaikitError as e:
            await context.abort(grpc.StatusCode[e.grpc], e.message)
        try:
            job = await run_job(lambda done: engine_jobs.generate(self.replica, request.text, gp.max_new_tokens, done))
        except RuntimeError as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        out = job.text()
        return self.data.GeneratedTextResult(
            generated_text=(request.text + out) if gp.preserve_input_text else out, generated_tokens=job.generated,
            finish_reason=self.data.FinishReason.Value(T.finish_reason(job)), producer_id=self.producer(),
            input_token_count=job.prompt_tokens)

    async def ServerStreamingTextGenerationTaskPredict(self, request, context) -> AsyncIterator[Any]:
        await self.begin(context, "server-streaming-text-generation")
        try:
            gp = self._generation(request)
            problem = engine_jobs.fits(self.replica, T.input_tokens(request.text), gp.max_new_tokens)
            if problem:
                raise CaikitError(400, "INVALID_ARGUMENT", problem)
        except CaikitError as e:
            await context.abort(grpc.StatusCode[e.grpc], e.message)
        d = self.data
        try:
            async for job, i, last in stream_job(
                    lambda done, tok: engine_jobs.generate(self.replica, request.text, gp.max_new_tokens, done, tok)):
                if i == 0:
                    yield d.GeneratedTextStreamResult(
                        details=d.TokenStreamDetails(input_token_count=job.prompt_tokens), producer_id=self.producer())
                reason = T.finish_reason(job) if last else "NOT_FINISHED"
                yield d.GeneratedTextStreamResult(
                    generated_text=job.token(i), producer_id=self.producer(),
                    details=d.TokenStreamDetails(finish_reason=d.FinishReason.Value(reason), generated_tokens=i + 1,
                                                 input_token_count=job.prompt_tokens))
        except RuntimeError as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))

    # -- embedding module ----------------------------------------------------------------------
    async def EmbeddingTaskPredict(self, request, context):
        await self.begin(context, "embedding")
        n = T.input_tokens(request.text)
        await self.forward(context, n)
        return self.nlp_data.EmbeddingResult(result=self.vector(T.embed(self.replica, request.text)),
                                             producer_id=self.producer(), input_token_count=n)

    async def EmbeddingTasksPredict(self, request, context):
        await self.begin(context, "embedding-tasks")
        texts = list(request.texts)
        n = T.input_tokens(*texts)
        await self.forward(context, n)
        vectors = self.common.ListOfVector1D(results=[self.vector(T.embed(self.replica, t)) for t in texts])
        return self.nlp_data.EmbeddingResults(results=vectors, producer_id=self.producer(), input_token_count=n)

    async def SentenceSimilarityTaskPredict(self, request, context):
        await self.begin(context, "sentence-similarity")
        sentences = list(request.sentences)
        n = T.input_tokens(request.source_sentence, *sentences)
        await self.forward(context, n)
        scores = self.nlp_data.SentenceSimilarityScores(scores=T.similarity(self.replica, request.source_sentence, sentences))
        return self.nlp_data.SentenceSimilarityResult(result=scores, producer_id=self.producer(), input_token_count=n)

    async def SentenceSimilarityTasksPredict(self, request, context):
        await self.begin(context, "sentence-similarity-tasks")
        sources, sentences = list(request.source_sentences), list(request.sentences)
        n = T.input_tokens(*sources, *sentences)
        await self.forward(context, n)
        results = [self.nlp_data.SentenceSimilarityScores(scores=T.similarity(self.replica, s, sentences)) for s in sources]
        return self.nlp_data.SentenceSimilarityResults(results=results, producer_id=self.producer(), input_token_count=n)

    def _scores(self, ranked: dict[str, Any]):
        out = []
        for s in ranked["scores"]:
            score = self.nlp_data.RerankScore(index=s["index"], score=s["score"], text=s["text"] or "")
            if s["document"] is not None:
                score.document.update(s["document"])
            out.append(score)
        return self.nlp_data.RerankScores(query=ranked["query"] or "", scores=out)

    def _rerank_args(self, request) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        docs = [json_format.MessageToDict(d) for d in request.documents]
        opts = {"top_n": request.top_n if request.HasField("top_n") else None}
        for k in ("return_documents", "return_query", "return_text"):
            opts[k] = getattr(request, k) if request.HasField(k) else True
        return docs, opts

    async def RerankTaskPredict(self, request, context):
        await self.begin(context, "rerank")
        docs, opts = self._rerank_args(request)
        n = T.input_tokens(request.query, *(T.doc_text(d) for d in docs))
        await self.forward(context, n)
        return self.nlp_data.RerankResult(result=self._scores(T.rerank(self.replica, request.query, docs, **opts)),
                                          producer_id=self.producer(), input_token_count=n)

    async def RerankTasksPredict(self, request, context):
        await self.begin(context, "rerank-tasks")
        docs, opts = self._rerank_args(request)
        queries = list(request.queries)
        n = T.input_tokens(*queries, *(T.doc_text(d) for d in docs))
        await self.forward(context, n)
        results = [self._scores(T.rerank(self.replica, q, docs, **opts)) for q in queries]
        return self.nlp_data.RerankResults(results=results, producer_id=self.producer(), input_token_count=n)


class InfoServicer(_Servicer):
    """caikit.runtime.info.InfoService."""

    async def GetModelsInfo(self, request, context):
        info = load("caikit_info").pb
        await self.api.grpc_preamble(context)
        models = T.models_info(self.replica, self.runtime)
        if request.model_ids:
            known = {m["name"] for m in models}
            for m in request.model_ids:
                if m not in known:
                    await context.abort(grpc.StatusCode.NOT_FOUND, f"Model {m} is not loaded")
            models = [m for m in models if m["name"] in request.model_ids]
        out = []
        for m in models:
            mi = info.ModelInfo(model_path=m["model_path"], name=m["name"], size=m["size"], loaded=m["loaded"],
                                module_id=m["module_id"], module_metadata=m["module_metadata"])
            mi.metadata.update(m["metadata"])
            out.append(mi)
        return info.ModelInfoResponse(models=out)

    async def GetRuntimeInfo(self, request, context):
        info = load("caikit_info").pb
        await self.api.grpc_preamble(context)
        return info.RuntimeInfoResponse(**T.runtime_info())


def add_servicers(api, server) -> None:
    load("caikit_nlp").grpc.add_NlpServiceServicer_to_server(NlpServicer(api), server)
    load("caikit_info").grpc.add_InfoServiceServicer_to_server(InfoServicer(api), server)
