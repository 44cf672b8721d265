"""Completions and chat completions on one replica, answered as vLLM answers them.

`generate` checks the request (the model or LoRA adapter, the prompt as text or token ids,
max_tokens against the context length and the KV cache), draws its output length (text.py) and
queues one engine `Request` whose callbacks write the answer: an SSE chunk per token
(`_on_token`), then the last chunk with usage and `[DONE]`, or one JSON body without streaming
(`_on_done`). Echo mode repeats the prompt (chat: the last user message). Blocks of generated
text join the prefix cache when the request ends; a closed connection aborts the request.
"""

from __future__ import annotations

import array
import time

import orjson

from . import tokenizer as tok
from .engine_request import FINISHED, Request
from .openai_format import dumps, error_body, random_id
from .text import output_length, split_echo_tokens


class Generation:
    """Per-request response state (the engine calls on_token / on_done)."""

    __slots__ = ("replica", "conn", "api", "rid", "created", "model", "include_usage", "pre", "post",
                 "base", "echo", "role_sent", "prompt_len")

    def tok_bytes(self, i: int) -> bytes:
        if self.echo is not None:
            e = self.echo
            return e[i % len(e)]
        return self.replica.text.token(self.base, i)

    def full_text(self, n: int) -> str:
        if self.echo is not None:
            e = self.echo
            return orjson.loads(b'"' + b"".join(e[i % len(e)] for i in range(n)) + b'"')
        return self.replica.text.text(self.base, n).decode()


def h_completions(replica, conn, req):
    generate(replica, conn, req, "cmpl")


def h_chat(replica, conn, req):
    generate(replica, conn, req, "chat")


def generate(replica, conn, req, api):
    """One completion (`api` "cmpl") or chat completion ("chat"): answered now when the request is
    refused, else queued on the replica's engine, whose callbacks answer it."""
    if replica.preflight(conn):
        return
    body = replica.json_body(conn, req)
    if body is None:
        return
    cfg = replica.cfg
    r = replica.resolve_model(conn, body.get("model"))
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
    g = Generation()
    g.replica = replica
    g.conn = conn
    g.api = api
    # vLLM's ids: <prefix>-<X-Request-Id header, else the body's request_id, else random>; behind
    # Envoy the id therefore names the gateway's request (its access log's request_id).
    base_id = req.headers.get("x-request-id") or (body.get("request_id") if isinstance(body.get("request_id"), str) else None)
    g.rid = ("chatcmpl-" if api == "chat" else "cmpl-") + (base_id or random_id())
    g.created = int(time.time())
    g.model = model
    g.include_usage = bool(so.get("include_usage")) if isinstance(so, dict) else False
    g.base = crc
    g.prompt_len = prompt_len
    g.echo = None
    if cfg.mode == "echo":
        g.echo = [dumps(t)[1:-1] for t in split_echo_tokens(echo_src or " ")]
    g.role_sent = False
    if stream:
        head = dumps({"id": g.rid, "object": "chat.completion.chunk" if api == "chat" else "text_completion",
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
            out = g.full_text(r.num_output).encode("utf-8")
            return tok.block_hashes(tail + out, bs, start=start)
        ereq.tail_fn = tail_fn
    eng = replica.engine

    def on_close():
        if ereq.status != FINISHED:
            eng.abort(ereq)
    conn.on_close = on_close
    if stream:
        conn.start_stream()
    eng.add(ereq)


def _usage(req: Request) -> dict:
    return {"prompt_tokens": req.prompt_len, "total_tokens": req.prompt_len + req.num_output,
            "completion_tokens": req.num_output,
            "prompt_tokens_details": {"cached_tokens": req.cached_tokens or 0}}


def _on_token(req: Request) -> None:
    g: Generation = req.ctx
    conn = g.conn
    if conn.closed:
        return
    i = req.num_output - 1
    if g.api == "chat" and not g.role_sent:
        g.role_sent = True
        first = (g.pre[:-len(b'{"content":"')] + b'{"role":"assistant","content":""},"logprobs":null,'
                 b'"finish_reason":null}]}\n\n')
        conn.write_chunk(first + g.pre + g.tok_bytes(i) + g.post)
        return
    conn.write_chunk(g.pre + g.tok_bytes(i) + g.post)


def _on_done(req: Request, error: str | None = None) -> None:
    g: Generation = req.ctx
    conn = g.conn
    if conn.closed:
        return
    if not req.stream:
        if error:
            return conn.respond(400, error_body(error, "BadRequestError", 400))
        text = g.full_text(req.num_output)
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
        return conn.respond(200, dumps(obj))
    out = bytearray()
    if error:
        out += b"data: " + error_body(error, "BadRequestError", 400) + b"\n\n"
    else:
        i = req.num_output - 1
        tokb = g.tok_bytes(i)
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
        out += b"data: " + dumps(ch) + b"\n\n"
        if g.include_usage:
            u = {"id": g.rid, "object": "chat.completion.chunk" if g.api == "chat" else "text_completion",
                 "created": g.created, "model": g.model, "choices": [], "usage": _usage(req)}
            out += b"data: " + dumps(u) + b"\n\n"
    out += b"data: [DONE]\n\n"
    conn.end_stream(bytes(out))
