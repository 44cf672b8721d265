"""One simulated vLLM replica: HTTP routes (OpenAI API as vLLM serves it) + engine."""

from __future__ import annotations

import array
import asyncio
import base64
import os
import random
import sys
import time
import uuid

import orjson

from . import tokenizer as tok
from .config import VLLM_VERSION, SimConfig
from .engine import Engine
from .engine_request import FINISHED, Request
from .http import HTTPConnection, HTTPRequest
from .metrics import Metrics
from .protocols import api_for
from .text import TextSource, embedding_vector, output_length, split_echo_tokens

JSON = b"application/json"
FAILURE_TYPES = {
    # name: (status, type, message)
    "internal_error": (500, "InternalServerError", "Internal server error (injected failure)"),
    "server_error": (503, "ServiceUnavailableError", "The server is currently overloaded (injected failure)"),
    "rate_limit": (429, "RateLimitError", "Rate limit reached (injected failure)"),
}
_dumps = orjson.dumps


def error_body(message: str, type_: str, code: int, param: str | None = None) -> bytes:
    return _dumps({"error": {"message": message, "type": type_, "param": param, "code": code}})


def _rid() -> str:
    return uuid.uuid4().hex


class _Gen:
    """Per-request response state (the engine calls on_token / on_done)."""

    __slots__ = ("replica", "conn", "api", "rid", "created", "model", "include_usage", "pre", "post",
                 "base", "echo", "role_sent", "prompt_len")


class Replica:
    def __init__(self, cfg: SimConfig):
        self.cfg = cfg
        self.metrics = Metrics()
        self.engine = Engine(cfg, self.metrics)
        self.text = TextSource(cfg.seed)
        self.rng = random.Random(cfg.seed)
        self.conns: set[HTTPConnection] = set()
        self.closing = False
        self.crashed = False
        self.server: asyncio.base_events.Server | None = None
        self.started_at = 0.0
        self.created = int(time.time())
        self.loras: dict[str, str] = {}           # name -> path (loaded adapters, in order)
        self.n_gen_requests = 0
        self.failure_rate = cfg.failure_rate
        self.failure_types = list(cfg.failure_types)
        self.stall_after = cfg.stall_after
        self.stall_seconds = cfg.stall_seconds
        self.crash_after = cfg.crash_after
        self.injected_failures = 0
        self._hdr_cache: bytes = b""
        self.url = ""
        self.keep_alive_timeout = cfg.keep_alive_timeout
        self.api = api_for(self)    # another runtime's API (Caikit, TGIS, KServe v2); None = OpenAI

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: HTTPConnection(self), self.cfg.host, self.cfg.port,
                                               reuse_address=True, backlog=1024)
        port = self.server.sockets[0].getsockname()[1]
        self.cfg.port = port
        if not self.cfg.pod_name:
            self.cfg.pod_name = f"vllm-sim-{self.cfg.host}-{port}"
        self.url = f"http://{self.cfg.host}:{port}"
        self._hdr_cache = b"x-inference-pod: " + self.cfg.pod_name.encode() + b"\r\n"
        for name, path in self.cfg.lora_modules:
            self.loras[name] = path
            self.engine.cache_lora(name)
        self.started_at = time.monotonic()
        self.engine.start()
        if self.api is not None:
            await self.api.start()

    async def stop(self) -> None:
        self.closing = True
        if self.server is not None:
            self.server.close()
        for c in list(self.conns):
            c.abort()
        if self.api is not None:
            await self.api.stop()
        await self.engine.stop()
        if self.server is not None:
            try:
                await asyncio.wait_for(self.server.wait_closed(), 2)
            except Exception:
                pass

    def crash(self) -> None:
        """Die abruptly: exit the process or (crash_mode=close) drop every socket."""
        if self.cfg.crash_mode == "exit":
            sys.stderr.write(f"vllm-sim {self.cfg.pod_name}: injected crash\n")
            sys.stderr.flush()
            os._exit(1)
        self.crashed = True
        self.closing = True
        if self.server is not None:
            self.server.close()
        for c in list(self.conns):
            c.abort()
        self.engine.closed = True
        self.engine._kick()
        if self.api is not None:
            asyncio.get_running_loop().create_task(self.api.stop())

    def starting(self) -> bool:
        return (time.monotonic() - self.started_at) < self.cfg.startup_duration

    def common_headers(self, req: HTTPRequest | None) -> bytes:
        if req is None:
            return self._hdr_cache
        return self._hdr_cache + b"x-sim-path: " + req.target.encode("latin-1", "replace") + b"\r\n"

    # ------------------------------------------------------------------ routing
    def dispatch(self, conn: HTTPConnection, req: HTTPRequest) -> None:
        path = req.path
        if len(path) > 1 and path.endswith("/"):
            path = path[:-1]
        if self.api is not None and not path.startswith("/sim/"):
            return self.api.dispatch(conn, req, path)
        route = ROUTES.get(path)
        if route is None:
            return conn.respond(404, b'{"detail":"Not Found"}')
        method, fn = route
        if req.method != method and not (method == "GET" and req.method == "HEAD"):
            return conn.respond(405, b'{"detail":"Method Not Allowed"}')
        fn(self, conn, req)

    def _json(self, conn, req):
        try:
            body = orjson.loads(req.body) if req.body else {}
        except orjson.JSONDecodeError as e:
            conn.respond(400, error_body(f"Invalid JSON body: {e}", "BadRequestError", 400))
            return None
        if not isinstance(body, dict):
            conn.respond(400, error_body("Request body must be a JSON object", "BadRequestError", 400))
            return None
        return body

    def _resolve_model(self, conn, name):
        """Returns (echo_name, lora_or_None) or None after answering 404."""
        cfg = self.cfg
        if name is None or name == "":
            return cfg.served_model_name[0], None
        if name in cfg.served_model_name:
            return name, None
        if name in self.loras:
            return name, name
        conn.respond(404, error_body(f"The model `{name}` does not exist.", "NotFoundError", 404, "model"))
        return None

    # ------------------------------------------------------------------ simple routes
    def h_health(self, conn, req):
        if self.starting():
            return conn.respond(503, error_body("Server is starting", "ServiceUnavailableError", 503))
        conn.respond(200, b"", None)

    def h_metrics(self, conn, req):
        conn.respond(200, self.metrics.render(self.engine), b"text/plain; version=0.0.4; charset=utf-8")

    def h_version(self, conn, req):
        conn.respond(200, _dumps({"version": VLLM_VERSION}))

    def h_models(self, conn, req):
        cfg = self.cfg

        def perm():
            return {"id": f"modelperm-{_rid()}", "object": "model_permission", "created": self.created,
                    "allow_create_engine": False, "allow_sampling": True, "allow_logprobs": True,
                    "allow_search_indices": False, "allow_view": True, "allow_fine_tuning": False,
                    "organization": "*", "group": None, "is_blocking": False}
        data = [{"id": n, "object": "model", "created": self.created, "owned_by": "vllm", "root": cfg.model,
                 "parent": None, "max_model_len": cfg.max_model_len, "permission": [perm()]}
                for n in cfg.served_model_name]
        for name, path in self.loras.items():
            data.append({"id": name, "object": "model", "created": self.created, "owned_by": "vllm",
                         "root": path, "parent": cfg.served_model_name[0], "max_model_len": None,
                         "permission": [perm()]})
        conn.respond(200, _dumps({"object": "list", "data": data}))

    def h_state(self, conn, req):
        st = self.engine.state()
        st.update({"pod_name": self.cfg.pod_name, "model": self.cfg.served_model_name[0],
                   "loaded_lora_adapters": list(self.loras), "max_loras": self.cfg.max_loras,
                   "block_size": self.cfg.block_size, "time_scale": self.cfg.time_scale,
                   "requests_received": self.n_gen_requests, "injected_failures": self.injected_failures,
                   "failure_rate": self.failure_rate, "starting": self.starting(),
                   "connections": len(self.conns)})
        conn.respond(200, _dumps(st))

    def h_control(self, conn, req):
        body = self._json(conn, req)
        if body is None:
            return
        eng = self.engine
        if "failure_rate" in body:
            self.failure_rate = float(body["failure_rate"])
        if "failure_types" in body:
            ft = [t for t in body["failure_types"] if t in FAILURE_TYPES]
            self.failure_types = ft or ["internal_error"]
        if "stall_after" in body:
            self.stall_after = int(body["stall_after"])
        if "stall_seconds" in body:
            self.stall_seconds = float(body["stall_seconds"])
        if body.get("stall_now"):
            eng.stall(float(body.get("stall_seconds", self.stall_seconds)))
        if body.get("unstall"):
            eng.unstall()
        if "crash_after" in body:
            self.crash_after = int(body["crash_after"])
        if "time_scale" in body:
            self.cfg.time_scale = float(body["time_scale"])
        if body.get("reset_prefix_cache"):
            eng.kv.reset_prefix_cache()
            eng.version += 1
        resp = _dumps({"failure_rate": self.failure_rate, "failure_types": self.failure_types,
                       "stall_after": self.stall_after, "stall_seconds": self.stall_seconds,
                       "stalled": eng.stall_until > time.monotonic(), "crash_after": self.crash_after,
                       "time_scale": self.cfg.time_scale})
        if body.get("crash_now"):
            conn.respond(200, resp)
            asyncio.get_running_loop().call_soon(self.crash)
            return
        conn.respond(200, resp)

    def h_prefix_match(self, conn, req):
        """Oracle: how many prompt tokens would hit this replica's prefix cache right now."""
        body = self._json(conn, req)
        if body is None:
            return
        r = self._resolve_model(conn, body.get("model"))
        if r is None:
            return
        _, lora = r
        cfg = self.cfg
        if "messages" in body:
            data = tok.flatten_messages(body["messages"]).encode("utf-8")
        else:
            data = str(body.get("prompt", "")).encode("utf-8")
        n = max(1, tok.count_tokens(data))
        hashes = tok.block_hashes(data, cfg.block_size, lora or "")
        hit, _ = self.engine.kv.match(hashes, (n - 1) // cfg.block_size)
        conn.respond(200, _dumps({"prompt_tokens": n, "cached_tokens": hit * cfg.block_size,
                                  "blocks_total": len(hashes), "blocks_hit": hit,
                                  "block_size": cfg.block_size}))

    # ------------------------------------------------------------------ LoRA admin
    def h_load_lora(self, conn, req):
        body = self._json(conn, req)
        if body is None:
            return
        name, path = body.get("lora_name"), body.get("lora_path")
        if not name or not path:
            return conn.respond(400, error_body("Both 'lora_name' and 'lora_path' must be provided.",
                                                "InvalidUserInput", 400))
        if name in self.loras and not body.get("load_inplace"):
            return conn.respond(400, error_body(f"The lora adapter '{name}' has already been loaded.",
                                                "InvalidUserInput", 400))
        if name in self.cfg.served_model_name:
            return conn.respond(400, error_body(f"The lora adapter '{name}' has already been loaded.",
                                                "InvalidUserInput", 400))

        def done():
            self.loras[name] = path
            self.engine.cache_lora(name)
            self.engine.version += 1
            conn.respond(200, f"Success: LoRA adapter '{name}' added successfully.".encode(),
                         b"text/plain; charset=utf-8")
        asyncio.get_running_loop().call_later(self.cfg.lora_load_disk_s * self.cfg.time_scale, done)

    def h_unload_lora(self, conn, req):
        body = self._json(conn, req)
        if body is None:
            return
        name = body.get("lora_name")
        if not name and not body.get("lora_int_id"):
            return conn.respond(400, error_body("either 'lora_name' and 'lora_int_id' needs to be provided.",
                                                "InvalidUserInput", 400))
        if name not in self.loras:
            return conn.respond(404, error_body(f"The lora adapter '{name}' cannot be found.",
                                                "NotFoundError", 404))
        del self.loras[name]
        self.engine.drop_lora(name)
        conn.respond(200, f"Success: LoRA adapter '{name}' removed successfully.".encode(),
                     b"text/plain; charset=utf-8")

    # ------------------------------------------------------------------ tokenizer
    def h_tokenize(self, conn, req):
        body = self._json(conn, req)
        if body is None:
            return
        if body.get("model") is not None and self._resolve_model(conn, body.get("model")) is None:
            return
        if "messages" in body:
            text = tok.flatten_messages(body["messages"])
        else:
            p = body.get("prompt", "")
            if not isinstance(p, str):
                return conn.respond(400, error_body("'prompt' must be a string", "BadRequestError", 400))
            text = p
        ids = tok.encode(text)
        out = {"count": len(ids), "max_model_len": self.cfg.max_model_len, "tokens": ids,
               "token_strs": tok.token_strs(ids) if body.get("return_token_strs") else None}
        conn.respond(200, _dumps(out))

    def h_detokenize(self, conn, req):
        body = self._json(conn, req)
        if body is None:
            return
        if body.get("model") is not None and self._resolve_model(conn, body.get("model")) is None:
            return
        ids = body.get("tokens")
        if not isinstance(ids, list) or not all(isinstance(t, int) for t in ids):
            return conn.respond(400, error_body("'tokens' must be a list of integers", "BadRequestError", 400))
        conn.respond(200, _dumps({"prompt": tok.decode(ids)}))

    # ------------------------------------------------------------------ embeddings
    def h_embeddings(self, conn, req):
        if self._preflight(conn):
            return
        body = self._json(conn, req)
        if body is None:
            return
        r = self._resolve_model(conn, body.get("model"))
        if r is None:
            return
        model, _ = r
        inp = body.get("input")
        if isinstance(inp, str) or (isinstance(inp, list) and inp and isinstance(inp[0], int)):
            inputs = [inp]
        elif isinstance(inp, list) and inp:
            inputs = inp
        else:
            return conn.respond(400, error_body("'input' must be a string or a list", "BadRequestError", 400))
        dim = int(body.get("dimensions") or self.cfg.embedding_dim)
        b64 = body.get("encoding_format") == "base64"
        data = []
        total = 0
        for i, x in enumerate(inputs):
            if isinstance(x, str):
                raw = x.encode()
                n = tok.count_tokens(raw)
            elif isinstance(x, list):
                raw = array.array("q", [int(t) for t in x]).tobytes()
                n = len(x)
            else:
                return conn.respond(400, error_body("bad 'input' element", "BadRequestError", 400))
            total += n
            vec = embedding_vector(raw, dim, self.cfg.seed)
            emb = base64.b64encode(vec.tobytes()).decode() if b64 else vec.tolist()
            data.append({"index": i, "object": "embedding", "embedding": emb})
        if total > self.cfg.max_model_len * len(inputs):
            return conn.respond(400, error_body("input too long", "BadRequestError", 400))
        out = _dumps({"id": f"embd-{_rid()}", "object": "list", "created": int(time.time()), "model": model,
                      "data": data, "usage": {"prompt_tokens": total, "total_tokens": total,
                                              "completion_tokens": 0, "prompt_tokens_details": None}})
        cfg = self.cfg
        delay = (cfg.step_overhead_s + total * cfg.prefill_per_token_s) * cfg.time_scale
        self.metrics.prompt_tokens += total
        self.engine.version += 1
        asyncio.get_running_loop().call_later(delay, conn.respond, 200, out)

    # ------------------------------------------------------------------ generation
    def injected_fault(self) -> tuple[int, str, str] | None:
        """Startup and fault injection for one inference request, whatever its API: None to
        serve it, else (HTTP status, vLLM error type, message) to answer instead. May crash the
        replica (then the connection is gone) or stall its engine (the request is still served)."""
        if self.starting():
            return 503, "ServiceUnavailableError", "The server is starting up"
        self.n_gen_requests += 1
        n = self.n_gen_requests
        if self.crash_after and n > self.crash_after:
            self.crash()
            return 500, "InternalServerError", "crashed"
        if self.stall_after and n == self.stall_after + 1 and self.stall_seconds > 0:
            self.engine.stall(self.stall_seconds)
        if self.failure_rate > 0 and self.rng.random() < self.failure_rate:
            self.injected_failures += 1
            return FAILURE_TYPES[self.rng.choice(self.failure_types)]
        return None

    def _preflight(self, conn) -> bool:
        """Startup / fault injection for inference requests.  True = answered."""
        fault = self.injected_fault()
        if fault is not None:
            status, typ, msg = fault
            conn.respond(status, error_body(msg, typ, status))
            return True
        return False

    def h_completions(self, conn, req):
        self._generate(conn, req, "cmpl")

    def h_chat(self, conn, req):
        self._generate(conn, req, "chat")

    def _generate(self, conn, req, api):
        if self._preflight(conn):
            return
        body = self._json(conn, req)
        if body is None:
            return
        cfg = self.cfg
        r = self._resolve_model(conn, body.get("model"))
        if r is None:
            return
        model, lora = r
        if api == "chat":
            msgs = body.get("messages")
            if not isinstance(msgs, list) or not msgs:
                return conn.respond(400, error_body("'messages' must be a non-empty list", "BadRequestError", 400))
            text = tok.flatten_messages(msgs)
            data = text.encode("utf-8")
            prompt_len = tok.count_tokens(data)
            echo_src = tok.last_user_text(msgs)
            hashes = tok.block_hashes(data, cfg.block_size, lora or "") if cfg.enable_prefix_caching else []
        else:
            p = body.get("prompt")
            if isinstance(p, list) and len(p) == 1 and isinstance(p[0], (str, list)):
                p = p[0]
            if isinstance(p, str):
                data = p.encode("utf-8")
                prompt_len = tok.count_tokens(data)
                echo_src = p
                hashes = tok.block_hashes(data, cfg.block_size, lora or "") if cfg.enable_prefix_caching else []
            elif isinstance(p, list) and all(isinstance(t, int) for t in p):
                data = array.array("q", p).tobytes()
                prompt_len = len(p)
                echo_src = tok.decode(p)
                hashes = tok.token_block_hashes(p, cfg.block_size, lora or "") if cfg.enable_prefix_caching else []
            else:
                return conn.respond(400, error_body(
                    "'prompt' must be a string, a list of token ids, or a one-element list "
                    "(batched prompts are not supported by the simulator)", "BadRequestError", 400))
        if prompt_len == 0:
            prompt_len = 1
        mt = body.get("max_completion_tokens")
        if mt is None:
            mt = body.get("max_tokens")
        explicit = mt is not None
        if explicit:
            try:
                mt = int(mt)
            except (TypeError, ValueError):
                return conn.respond(400, error_body("max_tokens must be an integer", "BadRequestError", 400))
            if mt < 0:
                return conn.respond(400, error_body("max_tokens must be at least 1, got %d." % mt,
                                                    "BadRequestError", 400, "max_tokens"))
            mt = max(1, mt)
        else:
            mt = min(cfg.default_max_tokens, max(1, cfg.max_model_len - prompt_len))
        if prompt_len + mt > cfg.max_model_len:
            return conn.respond(400, error_body(
                f"This model's maximum context length is {cfg.max_model_len} tokens. However, you "
                f"requested {prompt_len + mt} tokens ({prompt_len} in the messages, {mt} in the "
                f"completion). Please reduce the length of the messages or completion.",
                "BadRequestError", 400))
        if -(-(prompt_len + mt) // cfg.block_size) > cfg.num_gpu_blocks:
            return conn.respond(400, error_body(
                f"Request needs {prompt_len + mt} tokens of KV cache but the cache holds only "
                f"{cfg.num_gpu_blocks * cfg.block_size} tokens.", "BadRequestError", 400))
        crc, out_len, reason = output_length(data, cfg.seed, mt, bool(body.get("ignore_eos")))
        stream = bool(body.get("stream"))
        so = body.get("stream_options") or {}
        g = _Gen()
        g.replica = self
        g.conn = conn
        g.api = api
        # vLLM's ids: <prefix>-<X-Request-Id header, else the body's request_id, else random>; behind
        # Envoy the id therefore names the gateway's request (its access log's request_id).
        base_id = req.headers.get("x-request-id") or (body.get("request_id") if isinstance(body.get("request_id"), str) else None)
        g.rid = ("chatcmpl-" if api == "chat" else "cmpl-") + (base_id or _rid())
        g.created = int(time.time())
        g.model = model
        g.include_usage = bool(so.get("include_usage")) if isinstance(so, dict) else False
        g.base = crc
        g.prompt_len = prompt_len
        g.echo = None
        if cfg.mode == "echo":
            g.echo = [_dumps(t)[1:-1] for t in split_echo_tokens(echo_src or " ")]
        g.role_sent = False
        if stream:
            head = _dumps({"id": g.rid, "object": "chat.completion.chunk" if api == "chat" else "text_completion",
                           "created": g.created, "model": model})[:-1]
            if api == "chat":
                g.pre = b"data: " + head + b',"choices":[{"index":0,"delta":{"content":"'
                g.post = b'"},"logprobs":null,"finish_reason":null}]}\n\n'
            else:
                g.pre = b"data: " + head + b',"choices":[{"index":0,"text":"'
                g.post = b'","logprobs":null,"finish_reason":null,"stop_reason":null}]}\n\n'
        ereq = Request(g.rid, prompt_len, hashes, out_len, reason, lora, stream,
                       _on_token, _on_done, g)
        if cfg.enable_prefix_caching and isinstance(data, bytes) and (api == "chat" or isinstance(p, str)):
            step = cfg.block_size * tok.BYTES_PER_TOKEN
            tail = data[len(hashes) * step:]
            start = hashes[-1] if hashes else tok.salt_seed(lora or "")
            bs = cfg.block_size

            def tail_fn(r, tail=tail, start=start):
                out = self.full_text(g, r.num_output).encode("utf-8")
                return tok.block_hashes(tail + out, bs, start=start)
            ereq.tail_fn = tail_fn
        eng = self.engine

        def on_close():
            if ereq.status != FINISHED:
                eng.abort(ereq)
        conn.on_close = on_close
        if stream:
            conn.start_stream()
        eng.add(ereq)

    # text helpers
    def tok_bytes(self, g: _Gen, i: int) -> bytes:
        if g.echo is not None:
            e = g.echo
            return e[i % len(e)]
        return self.text.token(g.base, i)

    def full_text(self, g: _Gen, n: int) -> str:
        if g.echo is not None:
            e = g.echo
            return orjson.loads(b'"' + b"".join(e[i % len(e)] for i in range(n)) + b'"')
        return self.text.text(g.base, n).decode()


def _usage(req: Request) -> dict:
    return {"prompt_tokens": req.prompt_len, "total_tokens": req.prompt_len + req.num_output,
            "completion_tokens": req.num_output,
            "prompt_tokens_details": {"cached_tokens": req.cached_tokens or 0}}


def _on_token(req: Request) -> None:
    g: _Gen = req.ctx
    conn = g.conn
    if conn.closed:
        return
    i = req.num_output - 1
    if g.api == "chat" and not g.role_sent:
        g.role_sent = True
        first = (g.pre[:-len(b'{"content":"')] + b'{"role":"assistant","content":""},"logprobs":null,'
                 b'"finish_reason":null}]}\n\n')
        conn.write_chunk(first + g.pre + g.replica.tok_bytes(g, i) + g.post)
        return
    conn.write_chunk(g.pre + g.replica.tok_bytes(g, i) + g.post)


def _on_done(req: Request, error: str | None = None) -> None:
    g: _Gen = req.ctx
    conn = g.conn
    if conn.closed:
        return
    rep = g.replica
    if not req.stream:
        if error:
            return conn.respond(400, error_body(error, "BadRequestError", 400))
        text = rep.full_text(g, req.num_output)
        if g.api == "chat":
            choice = {"index": 0, "message": {"role": "assistant", "content": text, "refusal": None,
                                              "annotations": None, "audio": None, "function_call": None,
                                              "tool_calls": [], "reasoning_content": None},
                      "logprobs": None, "finish_reason": req.finish_reason, "stop_reason": None}
            obj = {"id": g.rid, "object": "chat.completion", "created": g.created, "model": g.model,
                   "choices": [choice], "service_tier": None, "system_fingerprint": None,
                   "usage": _usage(req), "prompt_logprobs": None, "kv_transfer_params": None}
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": req.finish_reason,
                      "stop_reason": None, "prompt_logprobs": None}
            obj = {"id": g.rid, "object": "text_completion", "created": g.created, "model": g.model,
                   "choices": [choice], "service_tier": None, "system_fingerprint": None,
                   "usage": _usage(req), "kv_transfer_params": None}
        return conn.respond(200, _dumps(obj))
    out = bytearray()
    if error:
        out += b"data: " + error_body(error, "BadRequestError", 400) + b"\n\n"
    else:
        i = req.num_output - 1
        tokb = rep.tok_bytes(g, i)
        content = orjson.loads(b'"' + tokb + b'"')
        if g.api == "chat":
            if not g.role_sent:
                g.role_sent = True
                out += (g.pre[:-len(b'{"content":"')] + b'{"role":"assistant","content":""},"logprobs":null,'
                        b'"finish_reason":null}]}\n\n')
            ch = {"id": g.rid, "object": "chat.completion.chunk", "created": g.created, "model": g.model,
                  "choices": [{"index": 0, "delta": {"content": content}, "logprobs": None,
                               "finish_reason": req.finish_reason, "stop_reason": None}]}
        else:
            ch = {"id": g.rid, "object": "text_completion", "created": g.created, "model": g.model,
                  "choices": [{"index": 0, "text": content, "logprobs": None,
                               "finish_reason": req.finish_reason, "stop_reason": None}]}
        out += b"data: " + _dumps(ch) + b"\n\n"
        if g.include_usage:
            u = {"id": g.rid, "object": "chat.completion.chunk" if g.api == "chat" else "text_completion",
                 "created": g.created, "model": g.model, "choices": [], "usage": _usage(req)}
            out += b"data: " + _dumps(u) + b"\n\n"
    out += b"data: [DONE]\n\n"
    conn.end_stream(bytes(out))


ROUTES = {
    "/health": ("GET", Replica.h_health),
    "/health/ready": ("GET", Replica.h_health),
    "/ping": ("GET", Replica.h_health),
    "/metrics": ("GET", Replica.h_metrics),
    "/version": ("GET", Replica.h_version),
    "/v1/models": ("GET", Replica.h_models),
    "/v1/completions": ("POST", Replica.h_completions),
    "/v1/chat/completions": ("POST", Replica.h_chat),
    "/v1/embeddings": ("POST", Replica.h_embeddings),
    "/tokenize": ("POST", Replica.h_tokenize),
    "/detokenize": ("POST", Replica.h_detokenize),
    "/v1/load_lora_adapter": ("POST", Replica.h_load_lora),
    "/v1/unload_lora_adapter": ("POST", Replica.h_unload_lora),
    "/sim/state": ("GET", Replica.h_state),
    "/sim/control": ("POST", Replica.h_control),
    "/sim/prefix_match": ("POST", Replica.h_prefix_match),
}
