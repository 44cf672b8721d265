"""Table-driven scorer and picker tests; each expected value says where it comes from."""

from __future__ import annotations

import random

import pytest

from endpoint_picker.datastore import Endpoint, InFlight, Metrics
from endpoint_picker.scheduling.filters.saturation import SaturationFilter
from endpoint_picker.scheduling.framework import Candidate, Scheduler, SchedulingRequest
from endpoint_picker.scheduling.pickers.max_score import MaxScoreParams, MaxScorePicker
from endpoint_picker.scheduling.pickers.weighted_random import WeightedRandomPicker
from endpoint_picker.scheduling.scorers.inflight_load import InflightLoadScorer
from endpoint_picker.scheduling.scorers.kv_cache_utilization import KvCacheUtilizationScorer
from endpoint_picker.scheduling.scorers.lora_affinity import LoraAffinityScorer
from endpoint_picker.scheduling.scorers.prefix_cache import PrefixCacheParams, PrefixCacheScorer
from endpoint_picker.scheduling.scorers.queue import QueueScorer


def cand(i: int, *, inflight: int = 0, fresh: bool = True, **metrics) -> Candidate:
    return Candidate(Endpoint(f"pod{i}", "ns", f"10.0.0.{i}", 8000), Metrics(**metrics), InFlight(requests=inflight), fresh)


def req(model: str = "m", prompt: bytes = b"") -> SchedulingRequest:
    return SchedulingRequest(target_model=model, prompt=prompt)


@pytest.mark.parametrize(
    "waiting,expected",
    [
        ([0, 5, 10], [1.0, 0.5, 0.0]),  # (10-q)/(10-0)
        ([3, 3, 3], [1.0, 1.0, 1.0]),  # all equal -> 1
        ([2, 4], [1.0, 0.0]),  # min gets 1, max gets 0
        ([7], [1.0]),  # single candidate
    ],
)
def test_queue_scorer(waiting, expected):
    assert QueueScorer().score(req(), [cand(i, waiting=w) for i, w in enumerate(waiting)]) == pytest.approx(expected)


@pytest.mark.parametrize(
    "kv,expected",
    [
        ([0.0, 0.25, 1.0], [1.0, 0.75, 0.0]),  # 1 - usage
        ([0.8], [0.2]),
    ],
)
def test_kv_cache_utilization_scorer(kv, expected):
    assert KvCacheUtilizationScorer().score(req(), [cand(i, kv_usage=k) for i, k in enumerate(kv)]) == pytest.approx(expected)


def test_lora_affinity_scorer():
    cands = [
        cand(0, active_loras=frozenset({"a"}), max_lora=1),  # active -> 1.0
        cand(1, active_loras=frozenset({"x"}), max_lora=2),  # not loaded, 1 < 2 slots -> 0.8
        cand(2, active_loras=frozenset({"x"}), waiting_loras=frozenset({"a"}), max_lora=2),  # waiting, full -> 0.6
        cand(3, active_loras=frozenset({"x", "y"}), max_lora=2),  # full, absent -> 0.0
    ]
    assert LoraAffinityScorer().score(req("a"), cands) == [1.0, 0.8, 0.6, 0.0]


def lora(running: str, waiting: str, max_lora: int = 2, **kw) -> dict:
    return dict(active_loras=frozenset(filter(None, running.split(","))),
                waiting_loras=frozenset(filter(None, waiting.split(","))), max_lora=max_lora, lora_enabled=True, **kw)


@pytest.mark.parametrize(
    "model,endpoint,expected",
    [
        # Real vLLM lists an in-flight adapter in both lists: one request for lora-a leaves a slot free.
        ("lora-b", lora("lora-a", "lora-a"), 0.8),
        ("base", lora("lora-a", "lora-a"), 0.8),
        ("lora-a", lora("lora-a", "lora-a"), 1.0),
        # Both slots in use (each adapter in both lists): nothing free for a third model.
        ("base", lora("lora-a,lora-b", "lora-b,lora-a"), 0.0),
        ("lora-b", lora("lora-a,lora-b", "lora-b,lora-a"), 1.0),
        # Only queued (waiting list, not running: simulator-style or older servers): not loaded.
        ("lora-a", lora("", "lora-a", max_lora=2), 0.8),  # a slot is free anyway
        ("lora-a", lora("lora-b", "lora-a", max_lora=2), 0.6),  # no slot free: queued is the best it gets
        ("lora-c", lora("lora-b", "lora-a", max_lora=2), 0.0),
        # Family declared, no sample yet (nothing served since start): every slot is free.
        ("lora-a", dict(lora_enabled=True), 0.8),
    ],
)
def test_lora_affinity_reads_real_vllm_semantics(model, endpoint, expected):
    other = cand(9, **lora("lora-a,lora-b", "lora-a,lora-b"))  # keeps the pool "LoRA-aware"
    assert LoraAffinityScorer().score(req(model), [cand(0, **endpoint), other])[0] == expected


def test_lora_affinity_is_neutral_without_lora_metrics():
    assert LoraAffinityScorer().score(req("a"), [cand(0), cand(1)]) == [1.0, 1.0]  # no pod reports LoRA


def test_inflight_load_scorer():
    # loads 0, 2, 4 requests -> (4-L)/4
    assert InflightLoadScorer().score(req(), [cand(0), cand(1, inflight=2), cand(2, inflight=4)]) == [1.0, 0.5, 0.0]


def test_prefix_cache_scorer_matches_recorded_pick():
    s = PrefixCacheScorer(PrefixCacheParams(block_size_tokens=4))  # 16-byte blocks
    cands = [cand(0), cand(1)]
    prompt = b"A" * 64  # 4 blocks
    r1 = req(prompt=prompt)
    assert s.score(r1, cands) == [0.0, 0.0]  # empty index
    s.picked(r1, cands[1])
    assert s.score(req(prompt=prompt), cands) == [0.0, 1.0]  # all 4 blocks on pod1
    half = b"A" * 32 + b"B" * 32
    assert s.score(req(prompt=half), cands) == [0.0, 0.5]  # 2 of 4 leading blocks
    assert s.score(req(model="other", prompt=prompt), cands) == [0.0, 0.0]  # hash chain is seeded by model


def test_prefix_cache_block_size_floor():
    s = PrefixCacheScorer()
    assert s._block_tokens([cand(0, block_size=16)]) == 64  # floored at 64 pseudo-tokens
    assert s._block_tokens([cand(0, block_size=128)]) == 128  # server blocks larger than the floor win


def test_scheduler_clamps_and_weights():
    class Wild:
        TYPE = "wild-scorer"

        def score(self, request, candidates):
            return [5.0, -3.0]  # clamped to 1 and 0

    picker = MaxScorePicker(MaxScoreParams(max_endpoints=2), rng=random.Random(1))
    sched = Scheduler([], [(Wild(), 2.0), (QueueScorer(), 1.0)], picker)
    d = sched.schedule(req(), [cand(0, waiting=1), cand(1, waiting=0)])
    assert d.scores == {"10.0.0.0:8000": 2.0, "10.0.0.1:8000": 1.0}  # 2*1+1*0, 2*0+1*1
    assert [c.key for c in d.chosen] == ["10.0.0.0:8000", "10.0.0.1:8000"]


def test_filter_that_drops_everything_fails_open():
    sched = Scheduler([SaturationFilter()], [(QueueScorer(), 1)], MaxScorePicker())
    cands = [cand(0, waiting=50), cand(1, kv_usage=0.99)]  # both over threshold
    assert len(sched.schedule(req(), cands).chosen) == 2


def test_saturation_filter_drops_saturated_and_stale():
    kept = SaturationFilter().filter(req(), [cand(0, waiting=10), cand(1, fresh=False), cand(2, waiting=1, kv_usage=0.5)])
    assert [c.endpoint.name for c in kept] == ["pod2"]


def test_max_score_ties_are_random():
    picker = MaxScorePicker(rng=random.Random(7))
    cands = [cand(i) for i in range(4)]
    firsts = {picker.pick(req(), cands, [1.0] * 4)[0].key for _ in range(200)}
    assert len(firsts) == 4  # every tied endpoint gets picked sometimes


def test_weighted_random_follows_scores():
    picker = WeightedRandomPicker(rng=random.Random(3))
    cands = [cand(0), cand(1)]
    wins = sum(picker.pick(req(), cands, [3.0, 1.0])[0].key == cands[0].key for _ in range(4000))
    assert 0.70 < wins / 4000 < 0.80  # P(first) = 3/4 under A-Res
