"""Overload through the Director: sheddable traffic gets 429 at saturation 1, standard traffic 503
past overload_threshold, critical traffic 503 only past critical_overload_threshold."""

from __future__ import annotations

import orjson
import pytest

from endpoint_picker.config import load_config
from endpoint_picker.datastore import Datastore, Endpoint, parse_objective
from endpoint_picker.director import Director
from endpoint_picker.errors import Overloaded, TooManyRequests
from endpoint_picker.scheduling.registry import build_registry
from endpoint_picker.selfmetrics import SelfMetrics

OBJECTIVES = [
    {"metadata": {"name": m, "annotations": {"inference-gateway.dev/model": m}}, "spec": {"priority": p}}
    for m, p in (("batch", -10), ("chat", 0), ("base", 100))
]
ENDPOINTS = [Endpoint(f"pod{i}", "default", f"10.0.0.{i}", 8000) for i in range(2)]


def director(saturation: dict) -> Director:
    # No engine metrics: saturation = in-flight / max_concurrency, set directly below.
    cfg = load_config({"scrape": {"engine": "none"}, "saturation": {"max_concurrency": 10, **saturation}})
    store = Datastore()
    store.set_endpoints(ENDPOINTS)
    store.set_objectives([parse_objective(o) for o in OBJECTIVES])
    store.synced = True
    return Director(cfg, store, build_registry().build(cfg.scheduling), SelfMetrics())


def at(d: Director, saturation: float) -> None:
    for e in ENDPOINTS:
        d.store.inflight[e.key].requests = int(saturation * 10)


def outcome(d: Director, model: str) -> str:
    body = orjson.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]})
    try:
        routed = d.route("/v1/chat/completions", {}, body)
    except (TooManyRequests, Overloaded) as e:
        return f"{e.status} {e.reason}"
    d.release_request(routed)
    return "routed"


@pytest.mark.parametrize("saturation, batch, chat, base", [
    (0.5, "routed", "routed", "routed"),
    (1.0, "429 rejected-saturated", "routed", "routed"),
    (3.9, "429 rejected-saturated", "routed", "routed"),
    (4.0, "429 rejected-saturated", "503 rejected-overloaded", "routed"),
    (8.0, "429 rejected-saturated", "503 rejected-overloaded", "503 rejected-overloaded"),
])
def test_each_priority_has_its_bound(saturation, batch, chat, base):
    d = director({"overload_threshold": 4, "critical_overload_threshold": 8})
    at(d, saturation)
    assert [outcome(d, m) for m in ("batch", "chat", "base")] == [batch, chat, base]


def test_without_bounds_nothing_but_sheddable_traffic_is_refused():
    d = director({})
    at(d, 50)
    assert [outcome(d, m) for m in ("batch", "chat", "base")] == ["429 rejected-saturated", "routed", "routed"]
