"""Caikit's REST API (caikit.runtime.http_server) for the Caikit+TGIS and Caikit standalone runtimes.

Paths: `POST /api/v1/task/<task>` with `{"model_id", "inputs", "parameters"}` (`inputs` is the
task's single required parameter, or an object of them when there are several), the streaming
task `server-streaming-text-generation` as server-sent events (`event: message`, data = one
GeneratedTextStreamResult each), `GET /info/models`, `GET /info/version` (also `/info/runtime`,
the name seed 003 lists), `GET /health` ("OK"). Unknown paths get FastAPI's 404.

Errors are caikit's: `{"details", "code", "id"}` with the HTTP status (400 bad argument, 404
"Model 'x' not loaded"), request validation failures 422 with `additional_info` too. As in
caikit, the streaming endpoint validates the body first (422) but resolves the model inside
the stream: an unknown model is a 200 stream with one `event: error`.

gRPC (caikit.runtime.Nlp.NlpService, caikit.runtime.info.InfoService) is in caikit_grpc.py.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from . import caikit_tasks as T
from . import engine_jobs
from .base import JSON, RuntimeApi, model_header
from .caikit_tasks import CaikitError

TASK_PREFIX = "/api/v1/task/"
SSE = b"text/event-stream; charset=utf-8"


def _error(status: int, details: str, additional: list | None = None) -> bytes:
    body: dict[str, Any] = {"details": details, "code": status, "id": uuid.uuid4().hex}
    if additional is not None:
        body = {"details": details, "additional_info": additional, "code": status, "id": body["id"]}
    return orjson.dumps(body)


class CaikitApi(RuntimeApi):
    """Serves the tasks of `runtime` (caikit-tgis or caikit-standalone) on REST and gRPC."""

    def __init__(self, replica, runtime: str) -> None:
        super().__init__(replica)
        self.runtime = runtime
        handlers = {
            "text-generation": self.h_text_generation,
            "server-streaming-text-generation": self.h_streaming_text_generation,
            "embedding": self.h_embedding,
            "embedding-tasks": self.h_embedding_tasks,
            "sentence-similarity": self.h_sentence_similarity,
            "sentence-similarity-tasks": self.h_sentence_similarity_tasks,
            "rerank": self.h_rerank,
            "rerank-tasks": self.h_rerank_tasks,
        }
        self.routes = {TASK_PREFIX + t: ("POST", handlers[t]) for t in T.TASKS[runtime]}
        self.routes.update({
            "/info/models": ("GET", self.h_models),
            "/info/version": ("GET", self.h_version),
            "/info/runtime": ("GET", self.h_version),
            "/health": ("GET", self.h_health),
        })

    @property
    def serves_grpc(self) -> bool:
        return True

    def add_grpc(self, server) -> None:
        from .caikit_grpc import add_servicers

        add_servicers(self, server)

    # ------------------------------------------------------------------ helpers
    def _fail(self, conn, e: CaikitError) -> None:
        additional = [{"type": "value_error", "loc": ["body"], "msg": e.message}] if e.http == 422 else None
        conn.respond(e.http, _error(e.http, e.message, additional))

    def _request(self, req) -> tuple[str, Any, dict[str, Any]]:
        """(model_id, inputs, parameters) of a task request; raises CaikitError."""
        try:
            body = self.json_body(req)
        except ValueError as e:
            raise CaikitError(422, "INVALID_ARGUMENT", f"JSON decode error: {e}") from None
        if not isinstance(body, dict):
            raise CaikitError(422, "INVALID_ARGUMENT", "Input should be a valid dictionary or object to extract fields from")
        if "inputs" not in body:
            raise CaikitError(422, "INVALID_ARGUMENT", "Field required: inputs")
        params = body.get("parameters") or {}
        if not isinstance(params, dict):
            raise CaikitError(422, "INVALID_ARGUMENT", "parameters: Input should be a valid dictionary")
        return body.get("model_id"), body["inputs"], params

    def _admit(self, conn, req) -> tuple[str, Any, dict[str, Any]] | None:
        """Fault injection, body and model checks; None once an error was answered."""
        fault = self.fault()
        if fault is not None:
            conn.respond(fault[0], _error(fault[0], fault[1]))
            return None
        try:
            model, inputs, params = self._request(req)
            T.check_model(self.replica, model)
        except CaikitError as e:
            self._fail(conn, e)
            return None
        return model, inputs, params

    def _prefill_then(self, conn, model: str, tokens: int, result) -> None:
        """Run the forward pass for `tokens` inputs, then answer `result()`."""
        def done(job, error):
            if error:
                return conn.respond(400, _error(400, error))
            conn.respond(200, orjson.dumps(result()), JSON, model_header(model))

        job = engine_jobs.prefill(self.replica, tokens, done)
        conn.on_close = job.cancel

    # ------------------------------------------------------------------ text generation (Caikit+TGIS)
    def _generation(self, conn, req) -> tuple[str, str, T.GenerationParams] | None:
        admitted = self._admit(conn, req)
        if admitted is None:
            return None
        model, inputs, params = admitted
        try:
            text = T.check_strings("inputs", inputs, many=False)
            gp = T.generation_params(params)
        except CaikitError as e:
            self._fail(conn, e)
            return None
        problem = engine_jobs.fits(self.replica, T.input_tokens(text), gp.max_new_tokens)
        if problem:
            conn.respond(400, _error(400, problem))
            return None
        return model, text, gp

    def h_text_generation(self, conn, req) -> None:
        g = self._generation(conn, req)
        if g is None:
            return
        model, text, gp = g

        def done(job, error):
            if error:
                return conn.respond(400, _error(400, error))
            out = job.text()
            conn.respond(200, orjson.dumps({
                "generated_text": (text + out) if gp.preserve_input_text else out,
                "generated_tokens": job.generated, "finish_reason": T.finish_reason(job),
                "producer_id": T.producer(self.runtime), "input_token_count": job.prompt_tokens,
                "seed": None, "tokens": [], "input_tokens": [],
            }), JSON, model_header(model))

        job = engine_jobs.generate(self.replica, text, gp.max_new_tokens, done)
        conn.on_close = job.cancel

    def h_streaming_text_generation(self, conn, req) -> None:
        try:
            model, inputs, params = self._request(req)
            text = T.check_strings("inputs", inputs, many=False)
        except CaikitError as e:
            return self._fail(conn, e)
        conn.start_stream(200, SSE, model_header(model) if isinstance(model, str) else b"")
        try:
            fault = self.fault()
            if fault is not None:
                raise CaikitError(fault[0], "UNAVAILABLE", fault[1])
            T.check_model(self.replica, model)
            gp = T.generation_params(params)
            problem = engine_jobs.fits(self.replica, T.input_tokens(text), gp.max_new_tokens)
            if problem:
                raise CaikitError(400, "INVALID_ARGUMENT", problem)
        except CaikitError as e:
            return conn.end_stream(b"event: error\r\ndata: " + _error(e.http, e.message) + b"\r\n\r\n")

        prod = T.producer(self.runtime)

        def event(generated: str, n: int, reason: str, input_count: int) -> bytes:
            data = {"generated_text": generated, "tokens": [],
                    "details": {"finish_reason": reason, "generated_tokens": n, "seed": 0, "input_token_count": input_count},
                    "producer_id": prod, "input_tokens": []}
            return b"event: message\r\ndata: " + orjson.dumps(data) + b"\r\n\r\n"

        sent = [0]

        def on_token(job, i):
            while sent[0] <= i:
                conn.write_chunk(event(job.token(sent[0]), sent[0] + 1, "NOT_FINISHED", job.prompt_tokens))
                sent[0] += 1

        def done(job, error):
            if error:
                return conn.end_stream(b"event: error\r\ndata: " + _error(400, error) + b"\r\n\r\n")
            out = bytearray()
            n = job.generated
            while sent[0] < n:
                last = sent[0] == n - 1
                out += event(job.token(sent[0]), sent[0] + 1, T.finish_reason(job) if last else "NOT_FINISHED",
                             job.prompt_tokens)
                sent[0] += 1
            conn.end_stream(bytes(out))

        job = engine_jobs.generate(self.replica, text, gp.max_new_tokens, done, on_token)
        conn.write_chunk(event("", 0, "NOT_FINISHED", job.prompt_tokens))
        conn.on_close = job.cancel

    # ------------------------------------------------------------------ embedding module (Caikit standalone)
    def h_embedding(self, conn, req) -> None:
        a = self._admit(conn, req)
        if a is None:
            return
        try:
            text = T.check_strings("inputs", a[1], many=False)
        except CaikitError as e:
            return self._fail(conn, e)
        n = T.input_tokens(text)
        self._prefill_then(conn, a[0], n, lambda: {
            "result": {"data": {"values": T.embed(self.replica, text)}},
            "producer_id": T.producer(self.runtime), "input_token_count": n})

    def h_embedding_tasks(self, conn, req) -> None:
        a = self._admit(conn, req)
        if a is None:
            return
        try:
            texts = T.check_strings("inputs", a[1], many=True)
        except CaikitError as e:
            return self._fail(conn, e)
        n = T.input_tokens(*texts)
        self._prefill_then(conn, a[0], n, lambda: {
            "results": {"results": [{"data": {"values": T.embed(self.replica, t)}} for t in texts]},
            "producer_id": T.producer(self.runtime), "input_token_count": n})

    def _pair(self, conn, req, first: str, first_many: bool, second: str) -> tuple[Any, Any, dict, str] | None:
        a = self._admit(conn, req)
        if a is None:
            return None
        inputs = a[1]
        try:
            if not isinstance(inputs, dict):
                raise CaikitError(422, "INVALID_ARGUMENT", f"inputs: Input should be an object with {first} and {second}")
            x = T.check_strings(first, inputs.get(first), many=first_many)
            y = (T.check_documents(inputs.get(second)) if second == "documents"
                 else T.check_strings(second, inputs.get(second), many=True))
        except CaikitError as e:
            self._fail(conn, e)
            return None
        return x, y, a[2], a[0]

    def h_sentence_similarity(self, conn, req) -> None:
        p = self._pair(conn, req, "source_sentence", False, "sentences")
        if p is None:
            return
        source, sentences, _, model = p
        n = T.input_tokens(source, *sentences)
        self._prefill_then(conn, model, n, lambda: {
            "result": {"scores": T.similarity(self.replica, source, sentences)},
            "producer_id": T.producer(self.runtime), "input_token_count": n})

    def h_sentence_similarity_tasks(self, conn, req) -> None:
        p = self._pair(conn, req, "source_sentences", True, "sentences")
        if p is None:
            return
        sources, sentences, _, model = p
        n = T.input_tokens(*sources, *sentences)
        self._prefill_then(conn, model, n, lambda: {
            "results": [{"scores": T.similarity(self.replica, s, sentences)} for s in sources],
            "producer_id": T.producer(self.runtime), "input_token_count": n})

    def _rerank_options(self, params: dict[str, Any]) -> dict[str, Any]:
        top_n = params.get("top_n")
        return {"top_n": top_n if isinstance(top_n, int) else None,
                **{k: params.get(k, True) is not False for k in ("return_documents", "return_query", "return_text")}}

    def h_rerank(self, conn, req) -> None:
        p = self._pair(conn, req, "query", False, "documents")
        if p is None:
            return
        query, docs, params, model = p
        n = T.input_tokens(query, *(T.doc_text(d) for d in docs))
        opts = self._rerank_options(params)
        self._prefill_then(conn, model, n, lambda: {
            "result": T.rerank(self.replica, query, docs, **opts),
            "producer_id": T.producer(self.runtime), "input_token_count": n})

    def h_rerank_tasks(self, conn, req) -> None:
        p = self._pair(conn, req, "queries", True, "documents")
        if p is None:
            return
        queries, docs, params, model = p
        n = T.input_tokens(*queries, *(T.doc_text(d) for d in docs))
        opts = self._rerank_options(params)
        self._prefill_then(conn, model, n, lambda: {
            "results": [T.rerank(self.replica, q, docs, **opts) for q in queries],
            "producer_id": T.producer(self.runtime), "input_token_count": n})

    # ------------------------------------------------------------------ info and health
    def h_models(self, conn, req) -> None:
        conn.respond(200, orjson.dumps({"models": T.models_info(self.replica, self.runtime)}), JSON)

    def h_version(self, conn, req) -> None:
        conn.respond(200, orjson.dumps(T.runtime_info()), JSON)

    def h_health(self, conn, req) -> None:
        if self.replica.starting():
            return conn.respond(503, _error(503, "Server is starting"))
        conn.respond(200, b"OK", b"text/plain; charset=utf-8")
