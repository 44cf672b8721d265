"""Flow control without a network: the queue's order and bounds, the admission table, and the
Director holding requests at zero endpoints and at saturation, then releasing them in order."""

from __future__ import annotations

import orjson
import pytest

from endpoint_picker.admission import Verdict, admit
from endpoint_picker.config import SaturationConfig, load_config
from endpoint_picker.datastore import Datastore, Endpoint, parse_objective
from endpoint_picker.director import Director, Routed
from endpoint_picker.errors import NoEndpoints, Overloaded, RequestError, TooManyRequests
from endpoint_picker.flow_control import FlowQueue, Held
from endpoint_picker.scheduling.registry import build_registry
from endpoint_picker.selfmetrics import SelfMetrics

OBJECTIVES = [
    {"metadata": {"name": m, "annotations": {"inference-gateway.dev/model": m}}, "spec": {"priority": p}}
    for m, p in (("batch", -10), ("chat", 0), ("base", 100))
]
ENDPOINTS = [Endpoint(f"pod{i}", "default", f"10.0.0.{i}", 8000) for i in range(2)]


def held(priority: int, flow: str, size: int = 10, tag: str = "") -> Held:
    return Held(tag or f"{priority}/{flow}", priority, flow, size, None, 0.0, 30.0, lambda _: None)


# -- the queue -----------------------------------------------------------------------------------
def test_higher_priority_first_then_clients_take_turns_then_fifo_per_client():
    q = FlowQueue(max_requests=100, max_bytes=10_000)
    for tag, prio, flow in [("a1", 0, "alice"), ("a2", 0, "alice"), ("a3", 0, "alice"), ("b1", 0, "bob"),
                            ("s1", -10, "carol"), ("c1", 100, "dave"), ("b2", 0, "bob"), ("c2", 100, "erin")]:
        q.push(held(prio, flow, tag=tag))
    order = []
    while len(q):
        order.append(q.pop().request)
    # Critical (100) first: dave, erin in arrival order; then standard round robin alice/bob with
    # each one's own requests in order; sheddable last.
    assert order == ["c1", "c2", "a1", "b1", "a2", "b2", "a3", "s1"]


def test_bounds_are_per_priority_by_count_and_bytes():
    q = FlowQueue(max_requests=2, max_bytes=100)
    q.push(held(0, "a", 40))
    assert q.room(0, 40) and not q.room(0, 61)      # bytes: 40 + 61 > 100
    q.push(held(0, "b", 40))
    assert not q.room(0, 1)                          # count: 2 of 2
    assert q.room(100, 100) and not q.room(100, 101)  # another priority has its own budget
    assert q.depth() == {0: (2, 80)}


def test_remove_keeps_turn_order_and_counts():
    q = FlowQueue(max_requests=10, max_bytes=1000)
    a1, b1, a2 = held(0, "a", tag="a1"), held(0, "b", tag="b1"), held(0, "a", tag="a2")
    for h in (a1, b1, a2):
        q.push(h)
    assert q.remove(a1) and not q.remove(a1)
    assert [q.pop().request, q.pop().request] == ["a2", "b1"]
    assert len(q) == 0 and q.depth() == {0: (0, 0)}


# -- the admission table -------------------------------------------------------------------------
SAT = SaturationConfig(overload_threshold=4, critical_overload_threshold=8)
FLOW = load_config({"flow_control": {}}).flow_control


def verdict(priority: int, saturation: float, flow=FLOW, endpoints=True, room=True, ahead=False) -> str:
    try:
        return admit(priority, saturation, SAT, flow, endpoints=endpoints, room=room, queued_ahead=ahead).value
    except RequestError as e:
        return f"{e.status} {e.reason}: {e.message}"


@pytest.mark.parametrize("priority, saturation, flow, endpoints, room, ahead, expected", [
    (0, 0.5, None, True, True, False, "admit"),
    (-10, 1.0, None, True, True, False, "429 rejected-saturated: pool saturated; sheddable request rejected"),
    (0, 1.0, None, True, True, False, "admit"),
    (0, 0.0, None, False, True, False, "503 rejected-no-endpoints: no eligible endpoints"),
    (0, 0.5, FLOW, True, True, False, "admit"),
    (0, 0.5, FLOW, True, True, True, "queue"),          # others of its priority wait: behind them
    (-10, 1.0, FLOW, True, True, False, "queue"),
    (0, 1.0, FLOW, True, True, False, "queue"),
    (100, 1.0, FLOW, True, True, False, "queue"),
    (0, 1.0, FLOW, False, True, False, "queue"),        # scale from zero
    (-10, 1.0, FLOW, True, False, False, "429 rejected-saturated: pool saturated and the queue for sheddable requests is full"),
    (0, 1.0, FLOW, True, False, False, "503 rejected-overloaded: pool saturated and the queue for priority 0 is full; try again shortly"),
    (0, 1.0, FLOW, False, False, False, "503 rejected-no-endpoints: no eligible endpoints, and the queue for this priority is full"),
    (0, 4.0, FLOW, True, True, False, "503 rejected-overloaded: pool overloaded (saturation 4.0 >= 4); try again shortly"),
    (100, 4.0, FLOW, True, True, False, "queue"),
])
def test_admission_table(priority, saturation, flow, endpoints, room, ahead, expected):
    assert verdict(priority, saturation, flow, endpoints, room, ahead) == expected


# -- the Director with a queue -------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def director(flow: dict | None = None, endpoints=ENDPOINTS, clock: Clock | None = None) -> Director:
    # No engine metrics: saturation = in-flight / max_concurrency (2 per endpoint saturates it).
    cfg = load_config({"scrape": {"engine": "none"}, "saturation": {"max_concurrency": 2},
                       "flow_control": {"ttl_s": 5, "no_endpoint_ttl_s": 20, "max_requests_per_priority": 3, **(flow or {})}})
    store = Datastore()
    store.set_endpoints(list(endpoints))
    store.set_objectives([parse_objective(o) for o in OBJECTIVES])
    store.synced = True
    return Director(cfg, store, build_registry().build(cfg.scheduling), SelfMetrics(), clock=clock or Clock())


def body(model: str, n: int = 0) -> bytes:
    return orjson.dumps({"model": model, "messages": [{"role": "user", "content": f"hi {n}"}]})


class Client:
    """Submits like the ext_proc servicer does and records every answer, in order."""

    def __init__(self, d: Director) -> None:
        self.d = d
        self.answers: list[tuple[str, str]] = []
        self.routed: list[Routed] = []

    def send(self, model: str, user: str, n: int = 0) -> str:
        tag = f"{model}/{user}/{n}"

        def deliver(outcome):
            if isinstance(outcome, RequestError):
                self.answers.append((tag, f"{outcome.status} {outcome.reason}"))
            else:
                self.routed.append(outcome)
                self.answers.append((tag, "routed"))

        try:
            routed, place = self.d.submit("/v1/chat/completions", {"x-forwarded-for": user}, body(model, n), None, deliver)
        except RequestError as e:
            return f"{e.status} {e.reason}"
        if routed is not None:
            self.routed.append(routed)
            return "routed"
        return "held"

    def finish_one(self) -> None:
        self.d.release_request(self.routed.pop(0))


def saturate(c: Client) -> None:
    """4 requests in flight on 2 endpoints of max_concurrency 2: saturation 1.0."""
    for i in range(4):
        assert c.send("base", "filler", i) == "routed"
    assert c.d.flow is not None and len(c.d.flow.queue) == 0


def test_at_saturation_requests_wait_and_leave_by_priority_then_client_turns():
    c = Client(director())
    saturate(c)
    sent = [("chat", "alice", 1), ("chat", "alice", 2), ("batch", "bob", 1), ("chat", "carol", 1), ("base", "dave", 1)]
    assert [c.send(*s) for s in sent] == ["held"] * 5
    for _ in range(5):      # each finished request frees one slot: one release per slot
        c.finish_one()
    assert [tag for tag, _ in c.answers] == ["base/dave/1", "chat/alice/1", "chat/carol/1", "chat/alice/2", "batch/bob/1"]
    assert all(a == "routed" for _, a in c.answers)
    text = c.d.metrics.render()
    assert 'picker_flow_queue_wait_seconds_count{priority="0",outcome="dispatched"} 3' in text
    assert "picker_flow_queued_requests 0" in text


def test_a_full_queue_refuses_sheddable_with_429_and_others_with_503():
    c = Client(director())
    saturate(c)
    assert [c.send("batch", "u", i) for i in range(4)] == ["held"] * 3 + ["429 rejected-saturated"]
    assert [c.send("chat", "u", i) for i in range(4)] == ["held"] * 3 + ["503 rejected-overloaded"]


def test_waiting_past_the_ttl_gets_ttl_expired():
    clock = Clock()
    c = Client(director(clock=clock))
    saturate(c)
    assert c.send("batch", "u") == "held" and c.send("chat", "u") == "held"
    clock.t += 4.9
    c.d.flow.dispatch()
    assert c.answers == []
    clock.t += 0.2
    c.d.flow.dispatch()
    assert sorted(c.answers) == [("batch/u/0", "429 rejected-ttl-expired"), ("chat/u/0", "503 rejected-ttl-expired")]


def test_held_at_zero_endpoints_until_one_is_ready_then_cold_start_is_reported():
    clock = Clock()
    c = Client(director(endpoints=[], clock=clock))
    assert [c.send("chat", "u", i) for i in range(2)] == ["held", "held"]
    clock.t += 12.5  # within no_endpoint_ttl_s (20), past ttl_s (5): the zero-endpoint TTL applies
    c.d.flow.dispatch()
    assert c.answers == []
    c.d.store.set_endpoints(ENDPOINTS)
    c.d.flow.dispatch()
    assert c.answers == [("chat/u/0", "routed"), ("chat/u/1", "routed")]
    text = c.d.metrics.render()
    assert "picker_cold_start_seconds_count 1" in text and "picker_cold_start_seconds_sum 12.5" in text


def test_no_endpoint_in_time_gets_503_no_endpoints():
    clock = Clock()
    c = Client(director(endpoints=[], clock=clock))
    assert c.send("base", "u") == "held"
    clock.t += 20
    c.d.flow.dispatch()
    assert c.answers == [("base/u/0", "503 rejected-no-endpoints")]


def test_a_client_that_leaves_frees_its_place():
    c = Client(director(endpoints=[]))
    seen = []
    routed, place = c.d.submit("/v1/chat/completions", {}, body("chat"), None, seen.append)
    assert routed is None and len(c.d.flow.queue) == 1
    c.d.flow.cancel(place)
    c.d.store.set_endpoints(ENDPOINTS)
    c.d.flow.dispatch()
    assert seen == [] and len(c.d.flow.queue) == 0
    assert 'picker_flow_queue_wait_seconds_count{priority="0",outcome="cancelled"} 1' in c.d.metrics.render()


def test_route_never_queues_and_keeps_the_table_without_flow_control():
    d = director(endpoints=[])
    with pytest.raises(NoEndpoints):
        d.route("/v1/chat/completions", {}, body("chat"))
    d = director()
    c = Client(d)
    saturate(c)
    with pytest.raises(TooManyRequests):
        d.route("/v1/chat/completions", {}, body("batch"))
    assert isinstance(d.route("/v1/chat/completions", {}, body("chat")), Routed)


def test_overload_bound_still_refuses_before_the_queue():
    cfg = {"scrape": {"engine": "none"}, "saturation": {"max_concurrency": 1, "overload_threshold": 2},
           "flow_control": {}}
    store = Datastore()
    store.set_endpoints(ENDPOINTS[:1])
    store.set_objectives([parse_objective(o) for o in OBJECTIVES])
    conf = load_config(cfg)
    d = Director(conf, store, build_registry().build(conf.scheduling), SelfMetrics())
    store.inflight[ENDPOINTS[0].key].requests = 2
    with pytest.raises(Overloaded, match=r"saturation 2.0 >= 2"):
        d.submit("/v1/chat/completions", {}, body("chat"), None, lambda _: None)
    assert Verdict.QUEUE.value == "queue"
