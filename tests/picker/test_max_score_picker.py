"""max-score-picker: the top k in score order, ties (within float noise) in random order, every
tied endpoint equally likely, also when only part of the pool is tied."""

from __future__ import annotations

import random
from collections import Counter

from endpoint_picker.datastore import Endpoint, InFlight, Metrics
from endpoint_picker.scheduling.framework import Candidate, SchedulingRequest
from endpoint_picker.scheduling.pickers.max_score import MaxScoreParams, MaxScorePicker


def _cands(n: int) -> list[Candidate]:
    return [Candidate(Endpoint(f"p{i}", "ns", f"10.0.0.{i}", 8000), Metrics(), InFlight()) for i in range(n)]


REQ = SchedulingRequest("m", b"")


def test_strict_order_when_scores_differ():
    cands = _cands(6)
    got = MaxScorePicker(rng=random.Random(1)).pick(REQ, cands, [0.1, 0.9, 0.5, 0.7, 0.3, 0.2])
    assert [c.endpoint.name for c in got] == ["p1", "p3", "p2"]


def test_float_noise_is_a_tie_and_every_tied_endpoint_is_equally_likely():
    cands = _cands(10)
    picker = MaxScorePicker(MaxScoreParams(max_endpoints=3), rng=random.Random(5))
    scores = [0.3 + (1e-12 if i % 2 else 0.0) for i in range(10)]     # all equal up to float noise
    firsts = Counter(picker.pick(REQ, cands, scores)[0].key for _ in range(5000))
    assert len(firsts) == 10 and max(firsts.values()) < 1.3 * min(firsts.values())
    assert all(len(picker.pick(REQ, cands, scores)) == 3 for _ in range(20))


def test_partial_ties_keep_the_better_ones_first():
    cands = _cands(8)
    picker = MaxScorePicker(MaxScoreParams(max_endpoints=3), rng=random.Random(2))
    scores = [0.9, 0.5, 0.5, 0.5, 0.5, 0.1, 0.1, 0.95]
    seconds = Counter()
    for _ in range(4000):
        got = [c.endpoint.name for c in picker.pick(REQ, cands, scores)]
        assert got[:2] == ["p7", "p0"] and got[2] in {"p1", "p2", "p3", "p4"}
        seconds[got[2]] += 1
    assert max(seconds.values()) < 1.3 * min(seconds.values())


def test_fewer_candidates_than_endpoints_wanted():
    cands = _cands(2)
    got = MaxScorePicker(rng=random.Random(3)).pick(REQ, cands, [0.2, 0.4])
    assert [c.endpoint.name for c in got] == ["p1", "p0"]
