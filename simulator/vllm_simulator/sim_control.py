"""A replica's /sim/* routes: what tests and benchmarks read and steer, beside vLLM's own API.

`/sim/state` is the engine's state (engine.py) plus the replica's: adapters, fault counters,
connections. `/sim/control` changes fault injection (failure rate and types, stall, crash), the
time scale, or resets the prefix cache. `/sim/prefix_match` says how many prompt tokens would hit
the prefix cache right now (the benchmarks' oracle). Each takes the replica, the connection and
the request, as the routes of replica.py do.
"""

from __future__ import annotations

import asyncio
import time

from . import tokenizer as tok
from .openai_format import FAILURE_TYPES, dumps


def h_state(replica, conn, req):
    st = replica.engine.state()
    st.update({"pod_name": replica.cfg.pod_name, "model": replica.cfg.served_model_name[0],
               "loaded_lora_adapters": list(replica.loras), "max_loras": replica.cfg.max_loras,
               "block_size": replica.cfg.block_size, "time_scale": replica.cfg.time_scale,
               "requests_received": replica.n_gen_requests, "injected_failures": replica.injected_failures,
               "failure_rate": replica.failure_rate, "starting": replica.starting(),
               "connections": len(replica.conns)})
    conn.respond(200, dumps(st))


def h_control(replica, conn, req):
    body = replica.json_body(conn, req)
    if body is None:
        return
    eng = replica.engine
    if "failure_rate" in body:
        replica.failure_rate = float(body["failure_rate"])
    if "failure_types" in body:
        ft = [t for t in body["failure_types"] if t in FAILURE_TYPES]
        replica.failure_types = ft or ["internal_error"]
    if "stall_after" in body:
        replica.stall_after = int(body["stall_after"])
    if "stall_seconds" in body:
        replica.stall_seconds = float(body["stall_seconds"])
    if body.get("stall_now"):
        eng.stall(float(body.get("stall_seconds", replica.stall_seconds)))
    if body.get("unstall"):
        eng.unstall()
    if "crash_after" in body:
        replica.crash_after = int(body["crash_after"])
    if "time_scale" in body:
        replica.cfg.time_scale = float(body["time_scale"])
    if body.get("reset_prefix_cache"):
        eng.kv.reset_prefix_cache()
        eng.version += 1
    resp = dumps({"failure_rate": replica.failure_rate, "failure_types": replica.failure_types,
                  "stall_after": replica.stall_after, "stall_seconds": replica.stall_seconds,
                  "stalled": eng.stall_until > time.monotonic(), "crash_after": replica.crash_after,
                  "time_scale": replica.cfg.time_scale})
    if body.get("crash_now"):
        conn.respond(200, resp)
        asyncio.get_running_loop().call_soon(replica.crash)
        return
    conn.respond(200, resp)


def h_prefix_match(replica, conn, req):
    """Oracle: how many prompt tokens would hit this replica's prefix cache right now."""
    body = replica.json_body(conn, req)
    if body is None:
        return
    r = replica.resolve_model(conn, body.get("model"))
    if r is None:
        return
    _, lora = r
    cfg = replica.cfg
    if "messages" in body:
        data = tok.flatten_messages(body["messages"]).encode("utf-8")
    else:
        data = str(body.get("prompt", "")).encode("utf-8")
    n = max(1, tok.count_tokens(data))
    hashes = tok.block_hashes(data, cfg.block_size, lora or "")
    hit, _ = replica.engine.kv.match(hashes, (n - 1) // cfg.block_size)
    conn.respond(200, dumps({"prompt_tokens": n, "cached_tokens": hit * cfg.block_size,
                             "blocks_total": len(hashes), "blocks_hit": hit,
                             "block_size": cfg.block_size}))
