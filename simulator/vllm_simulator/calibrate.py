"""Model outputs in virtual time (no HTTP, no sleeping): what one simulated replica delivers.

    python -m vllm_simulator.calibrate            # table for 1000-in/128-out and TTFT vs prompt

Drives the real Engine step by step with a closed-loop client of fixed concurrency; every
loop is bounded by the request count.
"""

from __future__ import annotations

import json
import random

from . import tokenizer as tok
from .config import SimConfig
from .engine import Engine
from .engine_request import Request


def closed_loop(conc: int, prompt: int, out: int, n_total: int | None = None, shared_prefix: int = 0,
                seed: int = 1, **cfg_kw) -> dict:
    cfg = SimConfig(port=1, **cfg_kw)
    e = Engine(cfg)
    rnd = random.Random(seed)
    n_total = n_total or conc * 4
    pre = bytes(rnd.getrandbits(8) for _ in range(4 * shared_prefix))
    clock = 0.0
    made = 0
    live: dict = {}
    ttft: list[float] = []
    itl: list[float] = []

    def new():
        nonlocal made
        body = pre + bytes(rnd.getrandbits(8) for _ in range(4 * (prompt - shared_prefix)))
        r = Request(str(made), prompt, tok.block_hashes(body, cfg.block_size), out, "length",
                    on_done=lambda r, error=None: None)
        e.add(r)
        live[r] = [clock, None]
        made += 1

    for _ in range(min(conc, n_total)):
        new()
    for _ in range(10_000_000):
        if not live:
            break
        sched, dur = e._schedule()
        if sched is None:
            break
        clock += dur
        e._apply(sched)
        for r, _ in sched:
            st = live.get(r)
            if st is None:
                continue
            if r.num_output >= 1 and st[1] is None:
                st[1] = clock
            if r.num_output >= r.out_len:
                ttft.append(st[1] - st[0])
                itl.append((clock - st[1]) / max(1, r.out_len - 1))
                del live[r]
                if made < n_total:
                    new()
    ttft.sort()
    itl.sort()
    return {"concurrency": conc, "prompt": prompt, "output": out, "shared_prefix": shared_prefix,
            "ttft_p50_ms": round(ttft[len(ttft) // 2] * 1e3, 1), "itl_p50_ms": round(itl[len(itl) // 2] * 1e3, 1),
            "output_tok_per_s": round(n_total * out / clock), "req_per_s": round(n_total / clock, 1),
            "preemptions": e.metrics.preemptions}


def main() -> None:
    for conc in (1, 8, 32, 64, 128, 256):
        print(json.dumps(closed_loop(conc, 1000, 128)))
    for p in (128, 1000, 4000, 16000):
        print(json.dumps(closed_loop(1, p, 16, n_total=2)))
    print(json.dumps(closed_loop(32, 1000, 128, shared_prefix=900)))


if __name__ == "__main__":
    main()
