"""Scheduler / KV-cache invariants, driving the engine step by step without a clock."""

from __future__ import annotations

import random

from vllm_simulator import tokenizer as tok
from vllm_simulator.config import SimConfig
from vllm_simulator.engine import Engine
from vllm_simulator.engine_request import FINISHED, Request
from vllm_simulator.kv_cache import CLEAN_KEY0


def check(e: Engine) -> None:
    kv = e.kv
    private = sum(r.blocks - len(r.held) for r in e.running)
    assert kv.used == private + len(kv.refs)
    held = {}
    for r in e.running:
        for h in r.held:
            held[h] = held.get(h, 0) + 1
        assert r.blocks * e.cfg.block_size >= r.num_computed
    assert held == kv.refs
    assert 0 <= kv.used <= kv.total
    assert kv.used + len(kv.free) == kv.total                 # every block is used or free
    n_clean = len(kv.free) - kv.cached_free                    # clean blocks first, then cached ones
    assert [k >= CLEAN_KEY0 for k in kv.free] == [True] * n_clean + [False] * kv.cached_free
    assert not set(kv.refs) & set(kv.free)
    assert len(e.running) <= e.cfg.max_num_seqs
    assert len({r.lora for r in e.running if r.lora}) <= e.cfg.max_loras
    for r in e.waiting:
        assert r.blocks == 0 and not r.held
    assert e.n_lora_reqs == sum(1 for r in list(e.running) + list(e.waiting) if r.lora)


def drive(e: Engine, reqs, arrivals, max_steps=200_000):
    pending = sorted(zip(arrivals, range(len(reqs))))
    step = 0
    while step < max_steps:
        while pending and pending[0][0] <= step:
            e.add(reqs[pending.pop(0)[1]])
        if not pending and not e.running and not e.waiting:
            break
        sched, dur = e._schedule()
        check(e)
        if sched:
            assert dur > 0
            e._apply(sched)
            check(e)
        elif not e.running and e.waiting:
            e._fail_unschedulable()
        step += 1
    return step


def test_random_workload_keeps_invariants_and_finishes_everything():
    rnd = random.Random(5)
    cfg = SimConfig(port=1, num_gpu_blocks=60, block_size=16, max_num_seqs=12, max_num_batched_tokens=256,
                    max_loras=2)
    e = Engine(cfg)
    prefixes = [("".join(rnd.choice("abcdef") for _ in range(4 * 200))).encode() for _ in range(4)]
    reqs, arrivals, done = [], [], []
    for i in range(150):
        body = prefixes[rnd.randrange(4)][:4 * rnd.randrange(16, 200)] + str(i).encode() * rnd.randrange(1, 30)
        lora = rnd.choice([None, None, "a", "b", "c"])
        reqs.append(Request(f"r{i}", tok.count_tokens(body), tok.block_hashes(body, 16, lora or ""),
                            rnd.randrange(1, 120), "length", lora, False, None,
                            lambda r, error=None: done.append((r, error))))
        arrivals.append(rnd.randrange(0, 400))
        hs = reqs[-1].hashes
        if i % 2 and hs:  # generated text also gets cached (as the server does for string prompts)
            tail = body[len(hs) * 64:]
            reqs[-1].tail_fn = lambda r, tail=tail, h0=hs[-1]: tok.block_hashes(tail + b"out " * r.num_output, 16,
                                                                                start=h0)
    drive(e, reqs, arrivals)
    assert len(done) == 150 and all(err is None for _, err in done)
    assert all(r.num_output == r.out_len and r.status == FINISHED for r in reqs)
    assert e.kv.used == 0 and not e.kv.refs
    m = e.metrics
    assert m.preemptions > 0          # the cache is small enough to force recompute
    assert m.prefix_hits > 0          # shared prefixes hit
    assert m.generation_tokens == sum(r.out_len for r in reqs)
    assert m.success["length"] == 150


def test_oversized_request_fails_instead_of_hanging():
    cfg = SimConfig(port=1, num_gpu_blocks=4, block_size=16)
    e = Engine(cfg)
    out = []
    r = Request("big", 100, [], 10, on_done=lambda r, error=None: out.append(error))
    drive(e, [r], [0], max_steps=10)
    assert out and out[0]


def test_step_duration_formula():
    cfg = SimConfig(port=1)
    e = Engine(cfg)
    r = Request("x", 1000, [], 3)
    e.add(r)
    sched, dur = e._schedule()
    expect = cfg.step_overhead_s + 1000 * cfg.prefill_per_token_s + 1000 * 1000 / 2 * cfg.prefill_attn_per_token_ctx_s
    assert abs(dur - expect) < 1e-9
    e._apply(sched)
    sched, dur = e._schedule()
    assert abs(dur - (cfg.step_overhead_s + cfg.decode_per_seq_s + 1001 * cfg.kv_read_per_token_s)) < 1e-9


def test_calibration_matches_stated_model_outputs():
    from vllm_simulator.calibrate import closed_loop
    one = closed_loop(1, 1000, 128, n_total=2)
    assert one["ttft_p50_ms"] == 38.5 and one["itl_p50_ms"] == 8.1
    busy = closed_loop(64, 1000, 128, n_total=128)
    assert busy["itl_p50_ms"] > 2 * one["itl_p50_ms"]
    assert busy["output_tok_per_s"] > 10 * one["output_tok_per_s"]
    warm = closed_loop(32, 1000, 128, n_total=64, shared_prefix=900)
    cold = closed_loop(32, 1000, 128, n_total=64)
    assert warm["req_per_s"] > cold["req_per_s"]
