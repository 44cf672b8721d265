"""Virtual-time harness: the event queue, the scrape model, the simulator request plumbing
(checked against the simulator's own HTTP handler), determinism, and the picker's real decision
path (prefix affinity, in-flight spreading, shedding) driven in simulated time. Seconds to run."""

from __future__ import annotations

import math

import orjson
import pytest
from vllm_simulator.config import SimConfig
from vllm_simulator.http import HTTPRequest
from vllm_simulator.replica import Replica

from benchmarks.vtime.events import EventQueue
from benchmarks.vtime.requests import answer_text, build
from benchmarks.vtime.run import run, sim_configs
from benchmarks.vtime.scrape import ScrapeView
from benchmarks.vtime.summary import summarize
from benchmarks.workloads import CHAT, PlannedRequest

REFERENCE = {"scheduling": {"scorers": [{"type": "queue-scorer", "weight": 2},
                                        {"type": "kv-cache-utilization-scorer", "weight": 2},
                                        {"type": "prefix-cache-scorer", "weight": 3}]}}


# --- event queue -----------------------------------------------------------------------------
def test_events_run_in_time_order_ties_in_scheduling_order():
    q, seen = EventQueue(), []
    q.at(2.0, seen.append, "c")
    q.at(1.0, seen.append, "a")
    q.at(1.0, seen.append, "b")
    q.at(5.0, seen.append, "late")
    assert q.run(3.0) is False and seen == ["a", "b", "c"] and q.now == 3.0
    assert q.run(10.0) is True and seen[-1] == "late" and q.now == 5.0


def test_events_refuse_the_past():
    q = EventQueue(start=4.0)
    with pytest.raises(ValueError, match="in the past"):
        q.at(3.0, print)


# --- scrape model ----------------------------------------------------------------------------
def test_scrape_view_shows_the_page_of_the_last_tick_after_its_latency():
    state = {"v": b"0"}
    view = ScrapeView(interval=0.05, latency=0.01, phase=0.02, render=lambda: state["v"])
    assert view.visible(0.025) == (None, 0.0)            # tick 0.02 not back yet (latency)
    view.observe(0.03)                                     # engine changes at 0.03 ...
    state["v"] = b"1"
    assert view.visible(0.031) == (b"0", pytest.approx(0.03))   # ... after the tick: old page
    view.observe(0.08)
    state["v"] = b"2"                                      # change at 0.08, after tick 0.07
    assert view.visible(0.075) == (b"0", pytest.approx(0.03))   # tick 0.07 still in flight
    assert view.visible(0.081) == (b"1", pytest.approx(0.08))   # state at 0.07 = after 0.03
    # no change for a while: later ticks show the current page, stamped at their arrival
    page, stamp = view.visible(0.205)
    assert page == b"2" and stamp == pytest.approx(0.18)


def test_scrape_latency_must_be_below_the_interval():
    with pytest.raises(ValueError, match="must be in"):
        ScrapeView(interval=0.05, latency=0.05, phase=0, render=lambda: b"")


# --- simulator plumbing, checked against the simulator's HTTP handler --------------------------
class _Conn:
    closed = False
    on_close = None

    def __init__(self) -> None:
        self.status = None

    def respond(self, status, body, ctype=None):
        self.status = (status, body)

    def start_stream(self, *a, **k):
        pass


def _server_request(cfg: SimConfig, path: str, body: dict):
    rep = Replica(cfg)
    for name, _ in cfg.lora_modules:
        rep.loras[name] = name
    conn = _Conn()
    rep.dispatch(conn, HTTPRequest("POST", path, "HTTP/1.1", {}, orjson.dumps(body), True))
    return conn, (rep.engine.waiting[-1] if rep.engine.waiting else None)


@pytest.mark.parametrize("path, body", [
    ("/v1/completions", {"model": "m", "prompt": "x" * 1000, "max_tokens": 40, "ignore_eos": True}),
    ("/v1/completions", {"model": "sql", "prompt": "y" * 999, "max_tokens": 33}),          # LoRA, EOS rule
    ("/v1/chat/completions", {"model": "m", "messages": [{"role": "system", "content": "s" * 300},
                                                         {"role": "user", "content": "hi " * 90}], "max_tokens": 17}),
])
def test_built_request_matches_the_simulator_handler(path, body):
    cfg = SimConfig(model="m", port=1, block_size=16, lora_modules=[("sql", "sql")], max_loras=2)
    conn, server = _server_request(cfg, path, body)
    assert conn.status is None and server is not None
    mine = build(cfg, body, path == CHAT, "r1", lambda r: None, lambda r, error=None: None).request
    for f in ("prompt_len", "hashes", "out_len", "finish_reason", "lora"):
        assert getattr(mine, f) == getattr(server, f), f
    for n in (1, 64, mine.out_len):
        server.num_output = mine.num_output = n
        assert mine.tail_fn(mine) == server.tail_fn(server)


@pytest.mark.parametrize("body, status", [
    ({"model": "nope", "prompt": "x"}, 404),
    ({"model": "m", "prompt": "x" * 4000, "max_tokens": 10}, 400),          # beyond max_model_len
])
def test_refusals_match_the_simulator_handler(body, status):
    cfg = SimConfig(model="m", port=1, max_model_len=512)
    conn, _ = _server_request(cfg, "/v1/completions", body)
    built = build(cfg, body, False, "r1", lambda r: None, lambda r, error=None: None)
    assert conn.status[0] == status == built.error[0]


# --- whole runs --------------------------------------------------------------------------------
SP = {"type": "shared_prefix", "rate": 30, "duration_s": 3, "drain_s": 30, "seed": 5,
      "params": {"num_groups": 4, "num_prompts_per_group": 3, "system_prompt_len": 3000, "question_len": 100,
                 "output_len": 16}}
CLUSTER = {"replicas": 4, "num_gpu_blocks": 1200, "block_size": 16}


def _key(res):
    return [(s.request_id, s.replica, s.status, s.first, s.end) for s in res.samples]


def test_runs_are_deterministic_by_seed_and_strategies_share_the_plan():
    a = run(SP, CLUSTER, {"type": "picker", "config": {}}, seed=1)
    b = run(SP, CLUSTER, {"type": "picker", "config": {}}, seed=1)
    c = run(SP, CLUSTER, {"type": "picker", "config": {}}, seed=2)
    rr = run(SP, CLUSTER, {"type": "round-robin"}, seed=1)
    assert _key(a) == _key(b) and _key(a) != _key(c)
    assert [(s.request_id, s.arrival) for s in rr.samples] == [(s.request_id, s.arrival) for s in a.samples]
    assert all(s.status == 200 for s in a.samples) and len(a.samples) > 50


def test_one_request_takes_the_engine_models_ttft():
    # 1,000-token prompt alone on a replica: the simulator README's 38.5 ms (calibrate.py).
    wl = {"type": "sharegpt", "rate": 0.1, "duration_s": 1, "drain_s": 5, "seed": 1,
          "params": {"input_median": 1000, "input_sigma": 0.0001, "output_median": 8, "output_sigma": 0.0001}}
    for seed in range(40):
        res = run(wl, {"replicas": 1}, {"type": "round-robin"}, seed=seed)
        if res.samples:
            break
    s = res.samples[0]
    assert s.prompt_tokens == 1000 and s.ttft == pytest.approx(0.0385, abs=0.001)


def test_picker_keeps_prefix_groups_together_and_round_robin_does_not():
    small = {**CLUSTER, "num_gpu_blocks": 500}   # 8k tokens: two of the four 3k-token prefixes fit
    picker = run(SP, small, {"type": "picker", "config": REFERENCE}, seed=3)
    rr = run(SP, small, {"type": "round-robin"}, seed=3)
    slo = {"ttft_s": 1, "tpot_s": 1}
    assert summarize(picker, slo)["prefix_hit_rate"] > 0.9 > 0.7 > summarize(rr, slo)["prefix_hit_rate"]


def test_inflight_accounting_spreads_a_burst_that_sees_one_stale_scrape():
    # 16 requests at one instant all read the same scrape (every pod scraped once before them,
    # at 1.5 s intervals): only the picker's own in-flight counts can spread them.
    wl = {"type": "burst", "rate": 0.001, "duration_s": 2, "drain_s": 30, "seed": 2,
          "params": {"burst_every_s": 10, "burst_size": 16, "first_burst_s": 1.0}}
    scrape = {"interval_ms": 1500, "latency_ms": 1}
    spread = run(wl, CLUSTER, {"type": "picker", "config": {}}, seed=0, scrape=scrape)
    counts = summarize(spread, {"ttft_s": 1, "tpot_s": 1})["requests_per_replica"]
    assert sorted(counts) == [4, 4, 4, 4]
    no_inflight = {"scheduling": {"scorers": [{"type": "queue-scorer", "weight": 1}],
                                  "picker": {"type": "max-score-picker"}}}
    tied = run(wl, CLUSTER, {"type": "picker", "config": no_inflight}, seed=0, scrape=scrape)
    # without in-flight counts every burst request sees the same scores: random ties only
    assert max(summarize(tied, {"ttft_s": 1, "tpot_s": 1})["requests_per_replica"]) > 4


def test_sheddable_requests_are_shed_under_overload_and_critical_ones_are_not():
    wl = {"type": "priority_mix", "rate": 60, "duration_s": 4, "drain_s": 60, "seed": 3,
          "params": {"classes": [{"objective": "critical", "priority": 100, "share": 0.5},
                                 {"objective": "batch", "priority": -1, "share": 0.5}]}}
    res = run(wl, {"replicas": 2, "max_num_seqs": 8}, {"type": "picker", "config": {}}, seed=0)
    shed = {o: sum(1 for s in res.samples if s.objective == o and s.status == 429) for o in ("critical", "batch")}
    assert shed["critical"] == 0 and shed["batch"] > 10
    assert all(s.reason == "rejected-saturated" for s in res.samples if s.status == 429)


def test_a_slower_replica_is_slower_and_the_oracle_avoids_it():
    cfgs = sim_configs({"replicas": 3, "slow": {"count": 1, "factor": 2.0}}, {"type": "sharegpt"})
    assert cfgs[2].step_overhead_s == 2 * cfgs[0].step_overhead_s and cfgs[1].prefill_per_token_s == cfgs[0].prefill_per_token_s
    wl = {"type": "sharegpt", "rate": 20, "duration_s": 3, "drain_s": 30, "seed": 4, "params": {}}
    res = run(wl, {"replicas": 3, "slow": {"count": 1, "factor": 3.0}}, {"type": "oracle"}, seed=0)
    per = summarize(res, {"ttft_s": 1, "tpot_s": 1})["requests_per_replica"]
    assert per[2] < min(per[0], per[1])


def test_later_chat_turns_hit_the_previous_answer_in_the_cache():
    wl = {"type": "multi_turn", "rate": 1, "duration_s": 2, "drain_s": 60, "seed": 9,
          "params": {"turns_min": 3, "turns_max": 3, "system_prompt_len": 64, "user_median": 40,
                     "output_median": 120, "think_time_s": 1}}
    res = run(wl, {"replicas": 1}, {"type": "round-robin"}, seed=0)
    by_id = {s.request_id: s for s in res.samples}
    assert len(by_id) == 3 * sum(1 for k in by_id if "." not in k) and all(s.status == 200 for s in res.samples)
    for rid, s in by_id.items():
        if "." not in rid:
            continue
        root, turn = rid.split(".")
        prev = by_id[root if turn == "1" else f"{root}.{int(turn) - 1}"]
        # every full block of the previous prompt + answer is a hit (the last token is never cached)
        assert s.cached_tokens == (prev.prompt_tokens + prev.output_tokens - 1) // 16 * 16


def test_answer_text_is_what_the_simulator_streams():
    cfg = SimConfig(model="m", port=1)
    built = build(cfg, {"model": "m", "prompt": "hello", "max_tokens": 5}, False, "r", lambda r: None,
                  lambda r, error=None: None)
    text = answer_text(cfg, built, 5)
    assert len(text) == 20 and text.count(" ") == 5


def test_summary_goodput_counts_sheds_and_slow_tokens_as_misses():
    from benchmarks.vtime.run import RunResult, Sample

    s = [Sample("a", 1.0, 200, 1.1, 2.1, 10, 11), Sample("b", 1.0, 200, 3.0, 4.0, 10, 11),   # TTFT 2 s: miss
         Sample("c", 1.0, 429), Sample("d", 1.0, 200, 1.1, 6.1, 10, 11)]                       # TPOT 0.5 s: miss
    res = RunResult(s, [], 0.0, 10.0, 0.0, 0.0, 0, 0, meta={"replicas": 1})
    out = summarize(res, {"ttft_s": 1.0, "tpot_s": 0.2})
    assert out["goodput_rps"] == pytest.approx(0.1) and out["shed_rate"] == 0.25
    assert out["tpot_p50"] == pytest.approx(0.1) and math.isclose(out["ttft_p50"], 0.1)


def test_crosscheck_replays_a_real_scenarios_plan_in_virtual_time():
    from benchmarks import catalog
    from benchmarks.crosscheck import _virtual, virtual_strategy
    from benchmarks.scenario import Strategy
    from benchmarks.workloads import plan

    assert virtual_strategy(Strategy("rr", "envoy", lb="ROUND_ROBIN")) == {"type": "round-robin"}
    assert virtual_strategy(Strategy("lr", "envoy", lb="LEAST_REQUEST")) == {"type": "least-request"}
    assert virtual_strategy(Strategy("o", "oracle")) is None and virtual_strategy(Strategy("r", "envoy", lb="RANDOM")) is None
    sc = catalog.resolve("sharegpt")[0]
    sc.workload = {**sc.workload, "duration_s": 2.0}                # 2 real s = 0.5 simulated s
    res = _virtual(sc, next(s for s in sc.strategies if s.type == "picker"), 2, 1.0)
    planned = plan(sc.workload, "m", sc.time_scale)
    assert [r["requests"] for r in res] == [len(planned)] * 2 and all(r["errors"] == 0 for r in res)


def test_only_measured_requests_can_fail_a_run():
    from benchmarks.vtime.run import RunResult, Sample

    s = [Sample("a", 1.0, 200, 1.1, 2.1, 10, 11), Sample("late", 12.0, "timeout"), Sample("bad", 2.0, 400)]
    res = RunResult(s, [], 0.0, 10.0, 0.0, 0.0, 0, 0, meta={"replicas": 1})
    out = summarize(res, {"ttft_s": 1.0, "tpot_s": 0.2})
    assert out["errors"] == 1 and out["unfinished_after_window"] == 1
