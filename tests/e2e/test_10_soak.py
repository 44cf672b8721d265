"""The soak in three minutes (benchmarks/soak.py, the 30-minute run's driver): steady traffic
through `igw up` while the leading picker is killed, a replica is killed and the config is
re-applied. No request may be lost before it started, no stream may be cut by the picker's
restart, and no process that ran throughout may grow its RSS by 5% or more after the warm-up."""

from __future__ import annotations

import json

import pytest

from benchmarks.soak import SoakPlan, run_soak

pytestmark = [pytest.mark.timeout(480), pytest.mark.slow]


def test_three_minute_soak(tmp_path):
    plan = SoakPlan(duration_s=180, rate=12, first_fault_s=40, fault_every_s=40, warmup_s=30, kill_amid_streams=2)
    doc = run_soak(plan, tmp_path)
    v = doc["verdicts"]
    print("SOAK-FIGURES", json.dumps({"totals": doc["totals"], "verdicts": v, "faults": doc["faults"],
                                      "loadavg": doc["samples"][-1]["loadavg"]}))
    assert [f["fault"] for f in doc["faults"]] == ["picker-kill", "replica-kill", "config-reapply"]
    assert v["streams_in_flight_at_picker_kills"] > 0, doc["faults"]  # the kill hit running streams
    assert v["lost_before_start"] == 0, [o for o in doc["outcomes"] if o["cause"] == "lost"][:5]
    assert v["streams_cut_by_picker_restart"] == 0, [o for o in doc["outcomes"] if o["cause"] == "cut"][:5]
    assert v["streams_cut_other"] == 0, [o for o in doc["outcomes"] if o["cause"] == "cut"][:5]
    assert v["rss_growth_ok"], v["rss_growth_after_warmup"]
    assert len(v["rss_growth_after_warmup"]) >= 5  # Envoy, supervisor and the untouched replicas at least
    assert doc["totals"]["causes"]["refused"] == 0, doc["totals"]["refusals"]
    assert all(p["running"] for p in doc["processes_at_end"].values()), doc["processes_at_end"]
