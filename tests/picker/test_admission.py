"""Rate limits, API keys and saturation math without any network."""

from __future__ import annotations

import hashlib

import pytest

from endpoint_picker.admission import (ApiKeys, RateLimiter, check_overload, check_shed, endpoint_saturation,
                                      overload_threshold, pool_saturation)
from endpoint_picker.config import RateLimit, SaturationConfig, load_config
from endpoint_picker.datastore import InFlight, Metrics
from endpoint_picker.errors import ConfigError, Overloaded, TooManyRequests, Unauthorized


M = frozenset({"m"})


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_per_user_limit_refills_over_the_period():
    clock = Clock()
    rl = RateLimiter([RateLimit(key="user", calls=2, renewal_period="minute")], clock=clock)
    rl.check("alice", M)
    rl.check("alice", M)
    with pytest.raises(TooManyRequests) as e:
        rl.check("alice", M)
    assert e.value.reason == "rate-limited"
    assert e.value.headers["retry-after"] == "30"  # one call refills every 60/2 s
    rl.check("bob", M)  # other users have their own bucket
    clock.t += 30
    rl.check("alice", M)


def test_endpoint_key_is_shared_and_model_scoped_rules_only_apply_to_that_model():
    clock = Clock()
    rl = RateLimiter([RateLimit(key="endpoint", calls=1, renewal_period="second", model="big")], clock=clock)
    rl.check("a", frozenset({"big"}))
    with pytest.raises(TooManyRequests):
        rl.check("b", frozenset({"big"}))  # whole pool shares the bucket
    rl.check("b", frozenset({"small"}))  # rule is for model "big" only
    with pytest.raises(TooManyRequests):
        rl.check("c", frozenset({"big-v2", "big"}))  # a request served as "big" (an internal target) counts


def test_api_keys(tmp_path):
    f = tmp_path / "keys.yaml"
    f.write_text(f"{hashlib.sha256(b'sk-1').hexdigest()}: alice\n")
    keys = ApiKeys.load(f)
    assert keys.user_for("Bearer sk-1") == "alice"
    assert keys.user_for("bearer sk-1") == "alice"
    for bad in (None, "", "Basic abc", "Bearer sk-2"):
        with pytest.raises(Unauthorized):
            keys.user_for(bad)


def test_api_keys_file_must_hold_sha256_digests(tmp_path):
    f = tmp_path / "keys.json"
    f.write_text('{"sk-plaintext": "alice"}')
    with pytest.raises(ConfigError, match="not a sha256 hex digest"):
        ApiKeys.load(f)


def test_saturation():
    cfg = SaturationConfig()
    fresh = 100.0
    m = Metrics(waiting=2.5, kv_usage=0.2, updated_at=fresh)
    assert endpoint_saturation(m, InFlight(), cfg, fresh, True) == 0.5  # max(2.5/5, 0.2/0.8)
    assert endpoint_saturation(m, InFlight(), cfg, fresh + 0.29, True) == 0.5  # 290 ms old: still fresh
    assert endpoint_saturation(m, InFlight(), cfg, fresh + 0.31, True) == 1.0  # 310 ms old > 300 ms: stale
    assert endpoint_saturation(Metrics(supported=False), InFlight(requests=50), cfg, fresh, True) == 0.5  # 50/100 in flight
    pairs = [(Metrics(waiting=10, updated_at=fresh), InFlight()), (Metrics(updated_at=fresh), InFlight())]
    assert pool_saturation(pairs, cfg, True, now=fresh) == 1.0  # mean(2.0, 0.0)
    check_shed(0, 5.0)  # priority 0 is never shed
    with pytest.raises(TooManyRequests):
        check_shed(-1, 1.0)


def test_overload_bounds_traffic_that_is_never_shed_critical_last():
    off = SaturationConfig()
    assert [overload_threshold(p, off) for p in (-10, 0, 100)] == [None, None, None]  # the reference: never
    cfg = SaturationConfig(overload_threshold=4, critical_overload_threshold=8)
    assert [overload_threshold(p, cfg) for p in (-10, 0, 100)] == [None, 4, 8]  # sheddable is shed at 1 instead
    assert overload_threshold(100, SaturationConfig(overload_threshold=4)) == 4  # critical defaults to the same
    check_overload(4, 3.99)
    with pytest.raises(Overloaded) as e:
        check_overload(4, 4.0)
    assert (e.value.status, e.value.reason, e.value.headers) == (503, "rejected-overloaded", {"retry-after": "1"})
    assert str(e.value) == "pool overloaded (saturation 4.0 >= 4); try again shortly"


def test_critical_overload_bound_below_the_standard_one_is_refused():
    with pytest.raises(ConfigError) as e:
        load_config({"saturation": {"overload_threshold": 6, "critical_overload_threshold": 3}})
    assert "critical_overload_threshold (3) must be at least overload_threshold (6)" in str(e.value)
    with pytest.raises(ConfigError) as e:
        load_config({"saturation": {"overload_threshold": 0.5}})
    assert "saturation.overload_threshold" in str(e.value)
