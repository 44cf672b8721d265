"""One simulated vLLM replica: its HTTP server, lifecycle, fault injection and vLLM's routes.

The routes are vLLM's OpenAI-compatible API (models, health, metrics, version, LoRA admin,
tokenizer, embeddings; completions and chat in openai_generation.py) and the simulator's own
`/sim/*` routes (sim_control.py). A replica of another runtime (`--runtime`) answers that
runtime's API instead (protocols/) and keeps `/sim/*`.
"""

from __future__ import annotations

import array
import asyncio
import base64
import os
import random
import sys
import time

import orjson

from . import tokenizer as tok
from .config import VLLM_VERSION, SimConfig
from .engine import Engine
from .http import HTTPConnection, HTTPRequest
from .metrics import Metrics
from .openai_format import FAILURE_TYPES, dumps, error_body, random_id
from .openai_generation import h_chat, h_completions
from .protocols import api_for
from .sim_control import h_control, h_prefix_match, h_state
from .text import TextSource, embedding_vector


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

    def json_body(self, conn, req):
        try:
            body = orjson.loads(req.body) if req.body else {}
        except orjson.JSONDecodeError as e:
            conn.respond(400, error_body(f"Invalid JSON body: {e}", "BadRequestError", 400))
            return None
        if not isinstance(body, dict):
            conn.respond(400, error_body("Request body must be a JSON object", "BadRequestError", 400))
            return None
        return body

    def resolve_model(self, conn, name):
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
        conn.respond(200, dumps({"version": VLLM_VERSION}))

    def h_models(self, conn, req):
        cfg = self.cfg

        def perm():
            return {"id": f"modelperm-{random_id()}", "object": "model_permission", "created": self.created,
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
        conn.respond(200, dumps({"object": "list", "data": data}))

    # ------------------------------------------------------------------ LoRA admin
    def h_load_lora(self, conn, req):
        body = self.json_body(conn, req)
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
        body = self.json_body(conn, req)
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
        body = self.json_body(conn, req)
        if body is None:
            return
        if body.get("model") is not None and self.resolve_model(conn, body.get("model")) is None:
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
        conn.respond(200, dumps(out))

    def h_detokenize(self, conn, req):
        body = self.json_body(conn, req)
        if body is None:
            return
        if body.get("model") is not None and self.resolve_model(conn, body.get("model")) is None:
            return
        ids = body.get("tokens")
        if not isinstance(ids, list) or not all(isinstance(t, int) for t in ids):
            return conn.respond(400, error_body("'tokens' must be a list of integers", "BadRequestError", 400))
        conn.respond(200, dumps({"prompt": tok.decode(ids)}))

    # ------------------------------------------------------------------ embeddings
    def h_embeddings(self, conn, req):
        if self.preflight(conn):
            return
        body = self.json_body(conn, req)
        if body is None:
            return
        r = self.resolve_model(conn, body.get("model"))
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
        out = dumps({"id": f"embd-{random_id()}", "object": "list", "created": int(time.time()), "model": model,
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

    def preflight(self, conn) -> bool:
        """Startup / fault injection for inference requests.  True = answered."""
        fault = self.injected_fault()
        if fault is not None:
            status, typ, msg = fault
            conn.respond(status, error_body(msg, typ, status))
            return True
        return False


ROUTES = {
    "/health": ("GET", Replica.h_health),
    "/health/ready": ("GET", Replica.h_health),
    "/ping": ("GET", Replica.h_health),
    "/metrics": ("GET", Replica.h_metrics),
    "/version": ("GET", Replica.h_version),
    "/v1/models": ("GET", Replica.h_models),
    "/v1/completions": ("POST", h_completions),
    "/v1/chat/completions": ("POST", h_chat),
    "/v1/embeddings": ("POST", Replica.h_embeddings),
    "/tokenize": ("POST", Replica.h_tokenize),
    "/detokenize": ("POST", Replica.h_detokenize),
    "/v1/load_lora_adapter": ("POST", Replica.h_load_lora),
    "/v1/unload_lora_adapter": ("POST", Replica.h_unload_lora),
    "/sim/state": ("GET", h_state),
    "/sim/control": ("POST", h_control),
    "/sim/prefix_match": ("POST", h_prefix_match),
}
