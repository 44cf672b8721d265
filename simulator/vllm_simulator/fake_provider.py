"""A fake external model provider (seed 004) with OpenAI's API, for running external models locally.

    python -m vllm_simulator.fake_provider --host 127.0.1.40 --port 8443 --control-port 8444 \
        --tls-cert cert.pem --tls-key key.pem --key-file api-key --models gpt-4o,text-embedding-3-small

Serves ``POST /v1/chat/completions``, ``/v1/completions`` (both streamed with ``"stream": true``,
usage in the last chunk with ``stream_options.include_usage``) and ``/v1/embeddings`` over HTTPS
(HTTP without ``--tls-cert``), behaving as OpenAI does where a gateway can tell:

- ``Authorization: Bearer <key>`` must match the key file (re-read at every request, so replacing
  the file rotates the key); otherwise 401 ``invalid_api_key`` whose message echoes a masked part
  of the key it was given, as OpenAI's does (a proxy must not pass that body on);
- an unknown model is 404 ``model_not_found``; a body that is not a JSON object is 400;
- responses carry ``x-request-id``, ``openai-organization`` and a ``set-cookie``, as OpenAI's do.

A plain-HTTP control API on ``--control-port`` (same host) makes it slow or failing:
``POST /fake/control`` with any of ``{"delay_ms": 0, "chunk_delay_ms": 0, "fail_status": null,
"down": false, "expected_key": "...", "add_models": [...]}`` (``down`` closes the API listener: connections are refused
until ``down: false``), ``GET /fake/state`` returns the counters and the last request as the
provider saw it (path, host, model, header names and values, the key shown only as whether it
matched).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import math
import signal
import ssl
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

from .http import HTTPConnection, HTTPRequest

API_PATHS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings")
EMBEDDING_DIM = 64


def _error(message: str, type_: str, code: str | None, param: str | None = None) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": type_, "param": param, "code": code}})


def _masked(key: str) -> str:
    return f"{key[:3]}***{key[-3:]}" if len(key) > 8 else "***"


def embedding(text: str, dim: int = EMBEDDING_DIM) -> list[float]:
    """A deterministic unit vector per text."""
    raw = b"".join(hashlib.sha256(f"{i}:{text}".encode()).digest() for i in range(math.ceil(dim / 32)))
    vec = [(b - 127.5) / 127.5 for b in raw[:dim]]
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [round(v / norm, 6) for v in vec]


def _words(model: str, max_tokens: int) -> list[str]:
    text = f"This answer comes from {model} at the fake provider, one word at a time."
    words = text.split()
    return [words[i % len(words)] + " " for i in range(max(1, max_tokens))]


class _Server:
    """What ``HTTPConnection`` needs of a server, for one listener."""

    def __init__(self, handler) -> None:
        self.conns: set[HTTPConnection] = set()
        self.closing = False
        self.keep_alive_timeout = 0.0
        self.handler = handler

    def dispatch(self, conn: HTTPConnection, req: HTTPRequest) -> None:
        asyncio.get_running_loop().create_task(self.handler(conn, req))

    def common_headers(self, req: HTTPRequest | None) -> bytes:
        return b""


class FakeProvider:
    def __init__(self, *, host: str, port: int, control_port: int, key_file: Path, models: list[str],
                 tls: ssl.SSLContext | None, name: str = "openai") -> None:
        self.host, self.port, self.control_port = host, port, control_port
        self.key_file = key_file
        self.models = set(models)
        self.tls = tls
        self.name = name
        self.expected_key: str | None = None
        self.delay_ms = 0.0
        self.chunk_delay_ms = 0.0
        self.fail_status: int | None = None
        self.counts: dict[str, int] = {"requests": 0, "unauthorized": 0, "served": 0, "failed": 0}
        self.last_request: dict[str, Any] | None = None
        self.api = _Server(self.handle_api)
        self.control = _Server(self.handle_control)
        self.api_listener: asyncio.base_events.Server | None = None

    # -- listeners ---------------------------------------------------------------------------------
    async def open_api(self) -> None:
        loop = asyncio.get_running_loop()
        self.api_listener = await loop.create_server(lambda: HTTPConnection(self.api), self.host, self.port,
                                                     ssl=self.tls, reuse_address=True)

    async def close_api(self) -> None:
        if self.api_listener is not None:
            self.api_listener.close()
            for c in list(self.api.conns):
                c.abort()
            # abort() closes the sockets on a later turn of the loop: answer the control request only
            # once they are closed, or a client's kept-alive connection still reaches the old listener
            deadline = asyncio.get_running_loop().time() + 2
            while self.api.conns and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.005)
            await self.api_listener.wait_closed()
            self.api_listener = None

    async def start(self) -> None:
        await self.open_api()
        loop = asyncio.get_running_loop()
        await loop.create_server(lambda: HTTPConnection(self.control), self.host, self.control_port, reuse_address=True)

    def key(self) -> str:
        if self.expected_key is not None:
            return self.expected_key
        return self.key_file.read_text().strip()

    # -- control API -------------------------------------------------------------------------------
    async def handle_control(self, conn: HTTPConnection, req: HTTPRequest) -> None:
        if req.path == "/fake/state":
            state = {"counts": self.counts, "last_request": self.last_request, "down": self.api_listener is None,
                     "delay_ms": self.delay_ms, "chunk_delay_ms": self.chunk_delay_ms, "fail_status": self.fail_status}
            conn.respond(200, orjson.dumps(state))
            return
        if req.path != "/fake/control" or req.method != "POST":
            conn.respond(404, _error("unknown control path", "invalid_request_error", None))
            return
        try:
            body = orjson.loads(req.body or b"{}")
        except orjson.JSONDecodeError:
            conn.respond(400, _error("control body is not JSON", "invalid_request_error", None))
            return
        for field in ("delay_ms", "chunk_delay_ms"):
            if field in body:
                setattr(self, field, float(body[field]))
        if "fail_status" in body:
            self.fail_status = int(body["fail_status"]) if body["fail_status"] else None
        if "expected_key" in body:
            self.expected_key = body["expected_key"]
        if "add_models" in body:  # a provider serves every model it has, whichever the stack asks for
            self.models |= set(body["add_models"])
        if "down" in body:
            if body["down"] and self.api_listener is not None:
                await self.close_api()
            elif not body["down"] and self.api_listener is None:
                await self.open_api()
        conn.respond(200, orjson.dumps({"ok": True}))

    # -- the provider's API ------------------------------------------------------------------------
    async def handle_api(self, conn: HTTPConnection, req: HTTPRequest) -> None:
        self.counts["requests"] += 1
        headers = {k: v for k, v in req.headers.items() if k != "authorization"}
        auth = req.headers.get("authorization", "")
        given = auth[7:] if auth.lower().startswith("bearer ") else ""
        model = None
        try:
            body = orjson.loads(req.body) if req.body else {}
        except orjson.JSONDecodeError:
            body = None
        if isinstance(body, dict):
            model = body.get("model")
        self.last_request = {"method": req.method, "path": req.path, "host": req.headers.get("host"), "model": model,
                             "headers": headers, "key_matched": bool(given) and given == self.key()}
        extra = (b"x-request-id: req_%s\r\nopenai-organization: org-fake-provider\r\n"
                 b"set-cookie: __cf_bm=fake; path=/; HttpOnly\r\n" % uuid.uuid4().hex[:24].encode())
        if not self.last_request["key_matched"]:
            self.counts["unauthorized"] += 1
            msg = (f"Incorrect API key provided: {_masked(given)}. You can find your API key at "
                   "https://platform.example/account/api-keys." if given else
                   "You didn't provide an API key. You need to provide your API key in an Authorization header.")
            conn.respond(401, _error(msg, "invalid_request_error", "invalid_api_key"), extra=extra)
            return
        if self.delay_ms:
            await asyncio.sleep(self.delay_ms / 1000)
        if self.fail_status:
            self.counts["failed"] += 1
            conn.respond(self.fail_status, _error(f"The server had an error ({self.fail_status}) while processing "
                                                  "your request.", "server_error", None), extra=extra)
            return
        if req.path not in API_PATHS or req.method != "POST":
            conn.respond(404, _error(f"Invalid URL ({req.method} {req.path})", "invalid_request_error", None), extra=extra)
            return
        if not isinstance(body, dict):
            conn.respond(400, _error("We could not parse the JSON body of your request.", "invalid_request_error", None),
                         extra=extra)
            return
        if model not in self.models:
            conn.respond(404, _error(f"The model `{model}` does not exist or you do not have access to it.",
                                     "invalid_request_error", "model_not_found"), extra=extra)
            return
        self.counts["served"] += 1
        if req.path == "/v1/embeddings":
            conn.respond(200, self._embeddings(model, body), extra=extra)
        elif body.get("stream"):
            await self._stream(conn, req.path, model, body, extra)
        else:
            conn.respond(200, self._completion(req.path, model, body), extra=extra)

    def _prompt_tokens(self, path: str, body: dict) -> int:
        if path == "/v1/chat/completions":
            text = " ".join(str(m.get("content", "")) for m in body.get("messages") or [] if isinstance(m, dict))
        else:
            text = str(body.get("prompt", ""))
        return max(1, math.ceil(len(text.encode()) / 4))

    def _completion(self, path: str, model: str, body: dict) -> bytes:
        words = _words(model, int(body.get("max_tokens") or 16))
        text = "".join(words).rstrip()
        usage = {"prompt_tokens": self._prompt_tokens(path, body), "completion_tokens": len(words)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        base = {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "created": int(time.time()), "model": model, "usage": usage}
        if path == "/v1/chat/completions":
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "length"}
            return orjson.dumps({**base, "object": "chat.completion", "choices": [choice]})
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": "length"}
        return orjson.dumps({**base, "id": f"cmpl-{uuid.uuid4().hex[:24]}", "object": "text_completion", "choices": [choice]})

    async def _stream(self, conn: HTTPConnection, path: str, model: str, body: dict, extra: bytes) -> None:
        chat = path == "/v1/chat/completions"
        words = _words(model, int(body.get("max_tokens") or 16))
        rid = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:24]}"
        obj = "chat.completion.chunk" if chat else "text_completion"
        created = int(time.time())
        conn.start_stream(200, extra=extra)
        for i, w in enumerate(words):
            if conn.closed:
                return
            last = i == len(words) - 1
            choice = ({"index": 0, "delta": {"content": w} if i else {"role": "assistant", "content": w},
                       "finish_reason": "length" if last else None} if chat else
                      {"index": 0, "text": w, "logprobs": None, "finish_reason": "length" if last else None})
            chunk = {"id": rid, "object": obj, "created": created, "model": model, "choices": [choice]}
            conn.write_chunk(b"data: " + orjson.dumps(chunk) + b"\n\n")
            if self.chunk_delay_ms:
                await asyncio.sleep(self.chunk_delay_ms / 1000)
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = {"prompt_tokens": self._prompt_tokens(path, body), "completion_tokens": len(words)}
            usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
            chunk = {"id": rid, "object": obj, "created": created, "model": model, "choices": [], "usage": usage}
            conn.write_chunk(b"data: " + orjson.dumps(chunk) + b"\n\n")
        conn.end_stream(b"data: [DONE]\n\n")

    def _embeddings(self, model: str, body: dict) -> bytes:
        inputs = body.get("input")
        items = inputs if isinstance(inputs, list) else [inputs]
        dim = int(body.get("dimensions") or EMBEDDING_DIM)
        data = [{"object": "embedding", "index": i, "embedding": embedding(str(t), dim)} for i, t in enumerate(items)]
        tokens = sum(max(1, math.ceil(len(str(t).encode()) / 4)) for t in items)
        return orjson.dumps({"object": "list", "data": data, "model": model,
                             "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="fake-provider", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8443)
    ap.add_argument("--control-port", type=int, required=True)
    ap.add_argument("--key-file", type=Path, required=True, help="the API key the provider accepts (re-read per request)")
    ap.add_argument("--models", required=True, help="comma-separated model names it serves")
    ap.add_argument("--name", default="openai", help="the provider it stands in for (shown in logs)")
    ap.add_argument("--tls-cert", type=Path)
    ap.add_argument("--tls-key", type=Path)
    a = ap.parse_args(argv)
    tls = tls_context(a.tls_cert, a.tls_key) if a.tls_cert else None
    fake = FakeProvider(host=a.host, port=a.port, control_port=a.control_port, key_file=a.key_file,
                        models=[m for m in a.models.split(",") if m], tls=tls, name=a.name)

    async def run() -> None:
        await fake.start()
        print(f"fake {a.name} provider on {'https' if tls else 'http'}://{a.host}:{a.port} "
              f"(control http://{a.host}:{a.control_port})", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()

    asyncio.run(run())


if __name__ == "__main__":
    main()
