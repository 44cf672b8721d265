"""The reported metrics of one virtual run (one seed), from its per-request samples.

* TTFT, TPOT, e2e percentiles over the completed requests that arrived in the measurement window
  [warmup_s, duration_s) (cold caches at the start are the same for every strategy; the warm-up
  keeps them out of the tails; later chat turns arriving after the window are served but not
  measured). TPOT = (end - first token) / (output tokens - 1).
* throughput: output tokens of completed requests per second from the first arrival to the
  last completion.
* goodput: requests per second of the arrival window that completed within the SLO
  (TTFT <= `slo.ttft_s` and TPOT <= `slo.tpot_s`); shed and failed requests count as misses.
* per objective (priority workloads): the same TTFT percentiles, goodput and the shed share.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from .. import stats
from .run import RunResult, Sample

METRICS = ("ttft_p50", "ttft_p90", "ttft_p99", "tpot_p50", "tpot_p90", "e2e_p90", "throughput_tok_s",
           "goodput_rps", "slo_attainment", "prefix_hit_rate", "shed_rate")


def _meets(s: Sample, slo: dict[str, Any]) -> bool:
    if s.status != 200 or s.ttft is None:
        return False
    if s.ttft > float(slo.get("ttft_s", float("inf"))):
        return False
    tpot = s.tpot
    return tpot is None or tpot <= float(slo.get("tpot_s", float("inf")))


def _latency(samples: list[Sample], slo: dict[str, Any], window: float) -> dict[str, float | None]:
    ok = [s for s in samples if s.status == 200]
    ttft = stats.summarize([s.ttft for s in ok], (50, 90, 99))
    tpot = stats.summarize([s.tpot for s in ok if s.tpot is not None], (50, 90))
    e2e = stats.summarize([s.end - s.arrival for s in ok], (90,))
    good = sum(1 for s in samples if _meets(s, slo))
    return {"ttft_p50": ttft["p50"], "ttft_p90": ttft["p90"], "ttft_p99": ttft["p99"],
            "tpot_p50": tpot["p50"], "tpot_p90": tpot["p90"], "e2e_p90": e2e["p90"],
            "goodput_rps": good / window if window > 0 else 0.0,
            "slo_attainment": good / len(samples) if samples else None,
            "shed_rate": sum(1 for s in samples if s.status == 429) / len(samples) if samples else None}


def summarize(result: RunResult, slo: dict[str, Any], warmup_s: float = 0.0) -> dict[str, Any]:
    samples = result.samples
    lo, hi = result.start + warmup_s, result.start + result.duration_s
    measured = [s for s in samples if lo <= s.arrival < hi]
    window = result.duration_s - warmup_s
    ok = [s for s in samples if s.status == 200]
    out: dict[str, Any] = _latency(measured, slo, window)
    if ok:
        span = max(s.end for s in ok) - min(s.arrival for s in samples)
        out["throughput_tok_s"] = sum(s.output_tokens for s in ok) / span if span > 0 else 0.0
        prompt = sum(s.prompt_tokens for s in ok)
        out["prefix_hit_rate"] = sum(s.cached_tokens for s in ok) / prompt if prompt else None
    else:
        out["throughput_tok_s"], out["prefix_hit_rate"] = 0.0, None
    status = Counter(str(s.status) for s in samples)
    out["requests"] = len(samples)
    out["measured_requests"] = len(measured)
    out["status"] = dict(sorted(status.items()))
    # Failures of measured requests fail the run; later chat turns still running when the drain
    # ends (they arrived after the window) are not measured and are only counted.
    out["errors"] = sum(1 for s in measured if s.status not in (200, 429))
    out["unfinished_after_window"] = sum(1 for s in samples if s.status == "timeout" and s.arrival >= hi)
    out["preemptions"] = sum(st.get("num_preemptions", 0) for st in result.replica_states)
    out["lora_loads"] = sum(st.get("lora_loads", 0) for st in result.replica_states)
    out["requests_per_replica"] = [sum(1 for s in samples if s.replica == i) for i in range(result.meta["replicas"])]
    objectives = sorted({s.objective for s in samples if s.objective})
    if objectives:
        out["by_objective"] = {o: _latency([s for s in measured if s.objective == o], slo, window) for o in objectives}
    out["cpu_s"] = result.cpu_s
    out["simulated_s"] = result.sim_s
    return out
