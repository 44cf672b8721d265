"""TGIS (IBM text-generation-inference) standalone: fmaas.GenerationService over gRPC.

gRPC on `--grpc-port` (TGIS's 8033): Generate (a batch of prompts), GenerateStream (one prompt,
a first message carrying `input_token_count`, then one message per token, the last with its
`stop_reason`), Tokenize and ModelInfo. HTTP on `--port` (TGIS's 3000): `/health` and
`/metrics` with TGIS's `tgi_*` names. TGIS serves a single model and does not select by
`model_id` (it is accepted and ignored, as TGIS does).

Parameter checks and their messages are TGIS's validation (router/src/validation.rs, mirrored
by vllm-tgis-adapter's TGISValidationError), answered as INVALID_ARGUMENT:
`max_new_tokens must be <= {max}`, `min_new_tokens must be <= max_new_tokens`,
`input tokens ({n}) plus prefix length (0) must be < {max_sequence_length}`, ... A
`max_new_tokens` of 0 means TGIS's default, 20; generation stops at the sequence length.
"""

from __future__ import annotations

import asyncio
from typing import AsyncIterator

import grpc

from .. import tokenizer as tok
from . import engine_jobs
from .base import GRPC_FOR_HTTP, RuntimeApi, run_job, stream_job
from .stubs import load

DEFAULT_MAX_NEW_TOKENS = 20


class TgisValidationError(ValueError):
    pass


class TgisApi(RuntimeApi):
    runtime = "tgis"

    def __init__(self, replica) -> None:
        super().__init__(replica)
        self.routes = {"/health": ("GET", self.h_health), "/metrics": ("GET", self.h_metrics)}
        self.input_count = 0
        self.failures: dict[str, int] = {"validation": 0, "cancelled": 0, "generate": 0}
        self.generated_tokens = 0
        self.requests_done = 0

    @property
    def serves_grpc(self) -> bool:
        return True

    def add_grpc(self, server) -> None:
        load("fmaas").grpc.add_GenerationServiceServicer_to_server(GenerationServicer(self), server)

    def h_health(self, conn, req) -> None:
        conn.respond(503 if self.replica.starting() else 200, b"", None)

    def h_metrics(self, conn, req) -> None:
        eng = self.replica.engine
        lines = [
            "# HELP tgi_queue_size Current number of queued requests", "# TYPE tgi_queue_size gauge",
            f"tgi_queue_size {len(eng.waiting)}",
            "# HELP tgi_batch_current_size Current batch size", "# TYPE tgi_batch_current_size gauge",
            f"tgi_batch_current_size {len(eng.running)}",
            "# HELP tgi_request_input_count Count of generate request inputs (batch of n counts as n)",
            "# TYPE tgi_request_input_count counter", f"tgi_request_input_count {self.input_count}",
            "# HELP tgi_request_failure Count of failed requests, segmented by error type",
            "# TYPE tgi_request_failure counter",
            *(f'tgi_request_failure{{err="{k}"}} {v}' for k, v in sorted(self.failures.items())),
            "# HELP tgi_request_success Count of successful requests", "# TYPE tgi_request_success counter",
            f"tgi_request_success {self.requests_done}",
            "# HELP tgi_request_generated_tokens_total Tokens generated", "# TYPE tgi_request_generated_tokens_total counter",
            f"tgi_request_generated_tokens_total {self.generated_tokens}",
        ]
        conn.respond(200, ("\n".join(lines) + "\n").encode(), b"text/plain; version=0.0.4; charset=utf-8")

    # ------------------------------------------------------------------ validation (TGIS's messages)
    def max_new_tokens(self, params) -> int:
        stopping = params.stopping
        mnt = stopping.max_new_tokens
        limit = self.cfg.max_new_tokens
        if mnt > limit:
            raise TgisValidationError(f"max_new_tokens must be <= {limit}")
        if stopping.min_new_tokens > (mnt or limit):
            raise TgisValidationError("min_new_tokens must be <= max_new_tokens")
        if params.decoding.repetition_penalty and not 0 < params.decoding.repetition_penalty <= 2:
            raise TgisValidationError("repetition_penalty must be > 0.0 and <= 2.0")
        if params.sampling.temperature and params.sampling.temperature < 0.05:
            raise TgisValidationError("temperature must be >= 0.05")
        if not 0 <= params.sampling.top_p <= 1:
            raise TgisValidationError("top_p must be > 0.0 and <= 1.0")
        return mnt or DEFAULT_MAX_NEW_TOKENS

    def fit(self, text: str, max_new: int, min_new: int) -> tuple[int, int]:
        """(input tokens, max new tokens after TGIS caps them at the sequence length)."""
        n = max(1, tok.count_tokens(text.encode("utf-8")))
        limit = self.cfg.max_model_len
        if n >= limit:
            raise TgisValidationError(f"input tokens ({n}) plus prefix length (0) must be < {limit}")
        if n + min_new > limit:
            raise TgisValidationError(f"input tokens ({n}) plus prefix length (0) plus min_new_tokens ({min_new}) must be <= {limit}")
        return n, min(max_new, limit - n)


class GenerationServicer:
    def __init__(self, api: TgisApi) -> None:
        self.api = api
        self.replica = api.replica
        self.pb = load("fmaas").pb

    async def _begin(self, context) -> None:
        await self.api.grpc_preamble(context, self.api.cfg.model)  # TGIS serves one model, whatever model_id says
        fault = self.api.fault()
        if fault is not None:
            await context.abort(grpc.StatusCode[GRPC_FOR_HTTP.get(fault[0], "INTERNAL")], fault[1])

    async def _invalid(self, context, e: Exception) -> None:
        self.api.failures["validation"] += 1
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))

    def _response(self, job, input_text: str | None):
        pb = self.pb
        text = job.text()
        return pb.GenerationResponse(
            input_token_count=job.prompt_tokens, generated_token_count=job.generated,
            text=(input_text + text) if input_text is not None else text,
            stop_reason=pb.StopReason.Value("MAX_TOKENS" if job.finish == "length" else "EOS_TOKEN"))

    async def Generate(self, request, context):
        await self._begin(context)
        try:
            max_new = self.api.max_new_tokens(request.params)
            plans = [self.api.fit(r.text, max_new, request.params.stopping.min_new_tokens) for r in request.requests]
        except TgisValidationError as e:
            await self._invalid(context, e)
        self.api.input_count += len(plans)

        async def one(text: str, limit: int):
            return await run_job(lambda done: engine_jobs.generate(self.replica, text, limit, done))

        try:
            jobs = await asyncio.gather(*(one(r.text, limit) for r, (_, limit) in zip(request.requests, plans)))
        except RuntimeError as e:
            self.api.failures["generate"] += 1
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        self.api.requests_done += 1
        self.api.generated_tokens += sum(j.generated for j in jobs)
        echo = request.params.response.input_text
        return self.pb.BatchedGenerationResponse(
            responses=[self._response(j, r.text if echo else None) for j, r in zip(jobs, request.requests)])

    async def GenerateStream(self, request, context) -> AsyncIterator:
        await self._begin(context)
        text = request.request.text
        try:
            max_new = self.api.max_new_tokens(request.params)
            _, limit = self.api.fit(text, max_new, request.params.stopping.min_new_tokens)
        except TgisValidationError as e:
            await self._invalid(context, e)
        self.api.input_count += 1
        pb = self.pb
        try:
            async for job, i, last in stream_job(
                    lambda done, t: engine_jobs.generate(self.replica, text, limit, done, t)):
                if i == 0:
                    yield pb.GenerationResponse(input_token_count=job.prompt_tokens,
                                                text=text if request.params.response.input_text else "")
                reason = ("MAX_TOKENS" if job.finish == "length" else "EOS_TOKEN") if last else "NOT_FINISHED"
                yield pb.GenerationResponse(generated_token_count=i + 1, text=job.token(i),
                                            stop_reason=pb.StopReason.Value(reason))
                if last:
                    self.api.requests_done += 1
                    self.api.generated_tokens += i + 1
        except RuntimeError as e:
            self.api.failures["generate"] += 1
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        except asyncio.CancelledError:
            self.api.failures["cancelled"] += 1
            raise

    async def Tokenize(self, request, context):
        await self.api.grpc_preamble(context)
        out = []
        for r in request.requests:
            ids = tok.encode(r.text)
            resp = self.pb.TokenizeResponse(token_count=len(ids))
            if request.return_tokens:
                resp.tokens.extend(tok.token_strs(ids))
            out.append(resp)
        return self.pb.BatchedTokenizeResponse(responses=out)

    async def ModelInfo(self, request, context):
        await self.api.grpc_preamble(context)
        return self.pb.ModelInfoResponse(model_kind=self.pb.ModelInfoResponse.ModelKind.Value("DECODER_ONLY"),
                                         max_sequence_length=self.api.cfg.max_model_len,
                                         max_new_tokens=self.api.cfg.max_new_tokens)
