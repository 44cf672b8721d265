"""What every runtime API of the simulator shares: REST dispatch, the gRPC server, job bridging.

A `RuntimeApi` answers one model-server pod's REST paths (on the replica's HTTP/1.1 server,
port `--port`) and, when the runtime has one, its gRPC services on `--grpc-port` (cleartext
HTTP/2, grpc.aio on the replica's event loop). The replica keeps its `/sim/*` debug routes and
hands every other path to the API.

`run_job` and `stream_job` turn the engine's callbacks into awaitables for gRPC handlers.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any, AsyncIterator, Callable

import orjson

from ..http import HTTPConnection, HTTPRequest
from . import engine_jobs
from .engine_jobs import Job

Handler = Callable[[HTTPConnection, HTTPRequest], None]
JSON = b"application/json"


def model_header(model: str) -> bytes:
    """`x-sim-model`: the model that answered (a debug header like `x-sim-path`)."""
    return b"x-sim-model: " + model.encode("utf-8", "replace") + b"\r\n"


class RuntimeApi:
    """Base of one runtime's API. Subclasses fill `routes` (exact paths) and may override
    `match` (templated paths), `not_found` and `add_grpc` (gRPC servicers)."""

    runtime = ""

    def __init__(self, replica) -> None:
        self.replica = replica
        self.cfg = replica.cfg
        self.routes: dict[str, tuple[str, Handler]] = {}
        self._grpc: Any = None

    # ------------------------------------------------------------------ REST
    def match(self, path: str) -> tuple[str, Handler] | None:
        return self.routes.get(path)

    def not_found(self, conn: HTTPConnection) -> None:
        conn.respond(404, b'{"detail":"Not Found"}')

    def method_not_allowed(self, conn: HTTPConnection) -> None:
        conn.respond(405, b'{"detail":"Method Not Allowed"}')

    def dispatch(self, conn: HTTPConnection, req: HTTPRequest, path: str) -> None:
        route = self.match(path)
        if route is None:
            return self.not_found(conn)
        method, fn = route
        if req.method != method and not (method == "GET" and req.method == "HEAD"):
            return self.method_not_allowed(conn)
        fn(conn, req)

    @staticmethod
    def json_body(req: HTTPRequest) -> Any:
        """The parsed body; raises ValueError with the parser's message when it is not JSON."""
        try:
            return orjson.loads(req.body) if req.body else None
        except orjson.JSONDecodeError as e:
            raise ValueError(str(e)) from None

    # ------------------------------------------------------------------ gRPC
    @property
    def serves_grpc(self) -> bool:
        return False

    def add_grpc(self, server) -> None:
        """Register this runtime's servicers on a grpc.aio server."""

    async def start(self) -> None:
        if not self.serves_grpc or self.cfg.grpc_port is None:
            return
        import grpc

        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        self.add_grpc(server)
        bound = server.add_insecure_port(f"{self.cfg.host}:{self.cfg.grpc_port}")
        if bound == 0:
            raise OSError(f"cannot listen for gRPC on {self.cfg.host}:{self.cfg.grpc_port}")
        self.cfg.grpc_port = bound
        await server.start()
        self._grpc = server

    async def stop(self) -> None:
        if self._grpc is not None:
            server, self._grpc = self._grpc, None
            await server.stop(0.5)

    async def grpc_preamble(self, context, model: str | None = None) -> None:
        """Every gRPC answer starts like the REST ones: which pod served it (and which model,
        `x-sim-model`, the simulator's debug header: a traffic split is visible to tests)."""
        md = [("x-inference-pod", self.cfg.pod_name)]
        if model:
            md.append(("x-sim-model", model))
        await context.send_initial_metadata(tuple(md))

    def fault(self) -> tuple[int, str] | None:
        """Startup / injected failure for one inference request: (HTTP status, message)."""
        f = self.replica.injected_fault()
        return None if f is None else (f[0], f[2])


# HTTP status of an injected failure -> gRPC status name (grpc.StatusCode member).
GRPC_FOR_HTTP = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL",
                 503: "UNAVAILABLE"}


async def run_job(start: Callable[[engine_jobs.DoneCallback], Job]) -> Job:
    """Start a job and wait for it; raises RuntimeError with the engine's error. The job is
    cancelled if the caller is (a gRPC client that went away)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future = loop.create_future()

    def on_done(job: Job, error: str | None) -> None:
        if not done.done():
            done.set_result(error)

    job = start(on_done)
    try:
        error = await done
    except asyncio.CancelledError:
        job.cancel()
        raise
    if error:
        raise RuntimeError(error)
    return job


async def stream_job(start: Callable[[engine_jobs.DoneCallback, engine_jobs.TokenCallback], Job]) -> AsyncIterator[tuple[Job, int, bool]]:
    """Start a streaming generation; yields (job, token index, last) for every token as the
    engine samples it. The engine reports the final token through on_done, so it is yielded
    from there. Cancelled with the caller."""
    queue: asyncio.Queue = asyncio.Queue()

    def on_token(job: Job, i: int) -> None:
        queue.put_nowait((i, None, False))

    def on_done(job: Job, error: str | None) -> None:
        queue.put_nowait((job.generated - 1, error, True))

    job = start(on_done, on_token)
    try:
        sent = -1
        while True:
            i, error, last = await queue.get()
            if error:
                raise RuntimeError(error)
            while sent < i:
                sent += 1
                yield job, sent, last and sent == i
            if last:
                return
    finally:
        job.cancel()


def route_regex(template: str) -> re.Pattern:
    """`/v2/models/{model}/infer` -> a regex with one named group per `{name}` (no slashes)."""
    return re.compile("^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template)) + "$")
