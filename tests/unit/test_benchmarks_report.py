"""Report tables from synthetic result documents (ratios, winners, targets, not-run rows)."""

from __future__ import annotations

from benchmarks import report


def run(p50, p99, rps, dec=None, **kw):
    r = {"throughput_rps": rps, "latency_s": {"p50": p50, "p99": p99}, "errors": 0,
         "cpu_s_per_1000_requests": {"envoy": 0.1, "picker": 0.5} if dec else {"envoy": 0.1}, **kw}
    if dec:
        r["decision_latency_s"] = {"p50": dec[0], "p99": dec[1], "count": 10}
    return r


OVERHEAD = {"scenario": "overhead", "kind": "overhead", "description": "d", "environment": {}, "result": {
    "levels": [
        {"level": "500 req/s", "kind": "rate", "params": {"rate": 500},
         "runs": {"envoy-round-robin": run(0.002, 0.004, 500), "envoy+picker": run(0.003, 0.009, 498, (0.0002, 0.001))}},
        {"level": "saturation", "kind": "closed", "params": {},
         "runs": {"envoy-round-robin": run(0.01, 0.02, 4000), "envoy+picker": run(0.04, 0.06, 1600, (0.0002, 0.001))}},
        {"level": "220 KB prompt, c=150", "kind": "closed", "params": {},
         "runs": {"envoy-round-robin": run(0.1, 0.2, 300), "envoy+picker": run(0.13, 0.3, 200, (0.001, 0.004)),
                  "envoy+null-processor": run(0.12, 0.25, 250, cpu_s_per_1000_requests={"envoy": 0.1, "null-processor": 0.2})}},
    ],
    "not_run": {"envoy+upstream-epp": "not run: no binary"},
    "scrape": {"endpoints": 100, "interval_ms": 50, "runs": {"envoy+picker": {"cores": {"picker": 0.2}, "endpoints_with_metrics": 100,
                                                                            "max_metrics_age_s": 0.05}}}}}


def qrun(p90, tok, typ="picker", search=False, mean=None):
    return {"type": typ, "search": search, "ttft_s": {"p50": p90 / 2, "p90": p90, "p99": p90 * 2, "mean": mean or p90 / 2},
            "tpot_s": {"p50": 0.01, "p90": 0.02}, "e2e_s": {"p50": 1, "p90": 2, "p99": 3}, "output_tokens_per_s": tok,
            "goodput_rps": 10, "slo_attainment": 0.9, "prefix_hit_rate_usage": 0.8, "http_429": 0, "requests": 10, "ok": 10,
            "preemptions": 0, "ttft_samples_s": [0.1, 0.2]}


SHARED = {"scenario": "shared_prefix", "kind": "quality", "description": "d", "environment": {}, "time_scale": 4, "result": {
    "workload": {"requests_planned": 10, "rate_sim_rps": 40, "rate_real_rps": 10, "duration_sim_s": 5, "mean_prompt_tokens": 7000,
                 "mean_output_tokens": 64, "kv_demand_tokens": 108000, "kv_capacity_tokens": 153600, "kv_demand_fraction": 0.7},
    "runs": {"envoy-round-robin": qrun(5.0, 1000, "envoy"), "picker-reference": qrun(0.3, 2000),
             "picker-a": qrun(0.2, 2100, search=True), "picker-b": qrun(0.4, 2000, search=True), "oracle": qrun(0.18, 2100, "oracle")},
    "not_run": {"upstream-epp": "not run: no binary"}}}


def test_overhead_rows_are_same_run_ratios():
    rows = report.overhead_rows(OVERHEAD["result"])
    r = rows[0]
    assert r["strategy"] == "envoy+picker"
    assert abs(r["throughput_ratio"] - 0.996) < 1e-9
    assert abs(r["added_p50_s"] - 0.001) < 1e-12 and abs(r["added_p99_s"] - 0.005) < 1e-12
    assert r["box_saturated"] is False
    md = report.overhead_markdown(OVERHEAD)
    assert "not run: no binary" in md and "0.200 cores" in md


def test_quality_winners_exclude_the_oracle_and_targets_are_checked():
    w = report.quality_winners(SHARED["result"])
    assert w["ttft_p90"] == "picker-a" and w["output_tokens_per_s"] == "picker-a"
    t = {a: c for a, _, c in report.shared_prefix_targets(SHARED)}
    assert t["p90 TTFT ≥ 10× better than round robin (picker-a)"] is True      # 5.0 / 0.2 = 25x
    assert t["p90 TTFT better than picker-reference"] is True
    assert t["within 1.5× of the oracle's p90 TTFT"] is True
    md = report.quality_markdown(SHARED)
    assert "| upstream-epp | not run: no binary |" in md and "**picker-a**" in md
    s = report.search_markdown(SHARED)
    assert s.index("picker-a") < s.index("picker-b")


def test_summary_has_anchor_table():
    md = report.summary_markdown({"overhead": OVERHEAD, "shared_prefix": SHARED}, "uv run igw bench all", 600)
    assert "uv run igw bench all" in md and "10.0 min" in md
    assert "+1.14 s @c=150 TTFT" in md and "0.54 s" in md and "−92.8%" in md
    # The picker's rows only (not the null processor's), with the null floor from the same run.
    assert "| 220 KB prompt, c=150: added latency p50 | +30 ms (200 vs 300 req/s; a do-nothing ext_proc server adds +20 ms) |" in md
    # Saturation: 1,600 req/s meets the target; capacity = 1000 / 0.5 CPU-s per 1k requests.
    assert "1600 req/s; picker CPU 0.50 s per 1k = 2000 req/s per core" in md and "| yes |" in md


def test_ratios_to_the_do_nothing_floor():
    rows = report.floor_ratios(OVERHEAD["result"])
    assert [r["level"] for r in rows] == ["220 KB prompt, c=150"]
    r = rows[0]
    assert r["ratio"] == 200 / 250 and r["cpu_s"] == (0.0005, 0.0002) and abs(r["own_cpu_s"] - 0.0003) < 1e-12
    md = "\n".join(report.floor_markdown(OVERHEAD["result"]))
    assert "| 220 KB prompt, c=150 | 200 / 250 | 0.80 | 0.500 / 0.200 ✔ | 0.300 |" in md


def test_crosscheck_table_tolerance_and_the_real_runs_beside_the_reference_epp():
    from benchmarks.report_scale import crosscheck_markdown

    def cell(r50, v50, r90, v90):
        return {q: {"real": {"mean": r}, "virtual": {"mean": v}, "relative_difference": (v - r) / r, "real_spread": 0.1}
                for q, r, v in (("p50", r50, v50), ("p90", r90, v90))}
    real = dict(SHARED["result"], failed={"upstream-epp": "all 10 requests failed: {'503': 10}"})
    doc = {"description": "d", "result": {"real_repeats": 2, "virtual_seeds": 5, "failed": {},
                                          "tolerance": {"p50": 0.2, "p90": 0.1}, "median_abs_difference": {"p50": 0.05, "p90": 0.02},
                                          "scenarios": {"shared_prefix": {"time_scale": 4, "strategies": {
                                              "envoy-round-robin": cell(4.0, 4.8, 7.0, 7.7)}, "real_run": {
                                              "description": "d", "workload": SHARED["result"]["workload"], "result": real}}}}}
    md = crosscheck_markdown(doc)
    assert "| shared_prefix | envoy-round-robin | 4.000 / 4.800 | +20.0% | +10.0% | 7.000 / 7.700 | +10.0% | +10.0% |" in md
    assert "Tolerance (largest |Δ| over the table): TTFT p50 +20.0%, TTFT p90 +10.0%" in md
    assert "#### Real-socket run: shared_prefix" in md and "| upstream-epp | **FAILED**: all 10 requests failed" in md


def _ci(mean, half):
    return {"mean": mean, "lo": mean - half, "hi": mean + half, "n": 10}


def _eval_cell(set_, cand, ref, oracle, rr, verdict):
    metrics = ("ttft_p50", "ttft_p90", "ttft_p99", "tpot_p90", "goodput_rps")
    strat = {name: {m: _ci(*vals[m]) for m in metrics}
             for name, vals in (("picker-default", cand), ("picker-reference", ref), ("oracle", oracle), ("round-robin", rr))}
    return {"set": set_, "strategies": strat, "verdict": dict(zip(metrics, verdict))}


def test_behind_names_every_worse_metric_and_every_tie_with_the_reference_per_set():
    from benchmarks import report_eval

    same = {"ttft_p50": (0.02, 0.001), "ttft_p90": (0.03, 0.001), "ttft_p99": (0.05, 0.001), "tpot_p90": (0.01, 0.0001),
            "goodput_rps": (40.0, 1.0)}
    res = {"candidate": "picker-default", "reference": "picker-reference", "cells": {
        # behind the oracle on p90 and goodput, behind round robin on TPOT, ties the reference on goodput
        "lora": _eval_cell("held_out", {**same, "ttft_p90": (9.7, 0.8), "goodput_rps": (28.7, 1.3)},
                           {**same, "ttft_p90": (11.6, 0.6), "goodput_rps": (28.0, 1.0)},
                           {**same, "ttft_p90": (0.032, 0.001), "goodput_rps": (43.7, 1.2)},
                           {**same, "ttft_p90": (12.0, 0.7), "tpot_p90": (0.0095, 0.0001), "goodput_rps": (12.5, 0.8)},
                           ("tie", "better", "tie", "tie", "tie")),
        # worse than the reference on p50 (lower is better), better on everything else
        "priority": _eval_cell("held_out", {**same, "ttft_p50": (0.41, 0.006)}, {**same, "ttft_p50": (0.36, 0.008)},
                               {**same, "ttft_p50": (0.41, 0.05)}, {**same, "ttft_p50": (5.0, 0.5)},
                               ("worse", "better", "better", "tie", "better")),
        # nothing behind: must not be listed
        "clean": _eval_cell("held_out", same, same, same, same, ("tie", "better", "tie", "tie", "better")),
        "train": _eval_cell("training", same, same, same, same, ("tie", "tie", "tie", "tie", "tie")),
    }}
    held = report_eval.behind(res, "held_out")
    assert held == [
        "lora: Worse than oracle: TTFT p90 9.7 [8.9, 10.5] vs 0.032 [0.031, 0.033]; goodput 28.7 [27.4, 30] vs "
        "43.7 [42.5, 44.9]. Worse than round-robin: TPOT p90 10 [9.9, 10.1] vs 9.5 [9.4, 9.6]. "
        "Does not beat picker-reference on goodput (intervals overlap).",
        "priority: Worse than picker-reference: TTFT p50 0.41 [0.404, 0.416] vs 0.36 [0.352, 0.368].",
    ]
    assert report_eval.behind(res, "training") == [
        "train: Does not beat picker-reference on TTFT p90 or goodput (intervals overlap)."]


def test_reference_epp_line_says_where_it_ran_and_where_not_with_the_recorded_reason():
    ran = {"kind": "overhead", "result": {"strategies": {"envoy+upstream-epp": {"type": "upstream-epp"},
                                                         "envoy+picker": {"type": "picker"}}, "not_run": {}}}
    skipped = {"kind": "quality", "result": {"runs": {"picker-default": {}},
                                             "not_run": {"upstream-epp": "not run: no binary",
                                                         "upstream-sim": "not run: no sim binary"}}}
    none = {"kind": "quality", "result": {"runs": {"picker-default": {}}, "not_run": {}}}
    assert report.upstream_epp_markdown({"overhead": ran, "lora": skipped, "burst": none}) == (
        "**Reference EPP (llm-d-router `epp` through `IGW_UPSTREAM_EPP`):** run in overhead. "
        "Not run in lora (not run: no binary).")
    assert report.upstream_epp_markdown({"burst": none}) == ""
