"""Traffic policy through the gateway: the 90/10 split, per-user rate limits, load shedding.

Which model a request was really sent with (after the picker's rewrite) comes from Envoy's access
log (`model`, recorded after the picker), since the client always sees the name it asked for."""

from __future__ import annotations

import collections
import time

import openai

from .conftest import BASE_MODEL, run_load

SPLIT_REQUESTS = 2000


def chat(stack, model: str, user: str, text: str = "hi", max_tokens: int = 1, timeout: float = 30, **kw):
    """As `user`: from the user's own client address (the identity per-user limits key on), with
    x-user-id as the access-log label."""
    client = stack.client_for(user, timeout=timeout)
    return client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": text}], max_tokens=max_tokens,
        extra_headers={"x-user-id": user}, **kw)


def test_traffic_split_90_10(local_stack):
    tag = f"split-{time.monotonic_ns()}"
    # Eight users so the 600/min per-user limit on food-review never applies here.
    results = run_load(lambda i: chat(local_stack, "food-review", f"{tag}-{i % 8}", f"review {i}").status_code,
                       SPLIT_REQUESTS, concurrency=16, timeout=150)
    errors = [r for r in results if r != 200]
    assert not errors, collections.Counter(map(repr, errors)).most_common(3)
    rows = local_stack.access_log(lambda r: (r["user"] or "").startswith(tag), SPLIT_REQUESTS)
    assert len(rows) == SPLIT_REQUESTS
    served = collections.Counter(r["model"] for r in rows)
    assert set(served) == {"food-review", "food-review-v2"}, served
    share = served["food-review-v2"] / SPLIT_REQUESTS
    # binomial sd at p=0.1, n=2000 is 0.0067: +-0.03 is about 4.5 sd
    assert abs(share - 0.10) < 0.03, served
    # every pod took part (the picker balances the split traffic over the pool)
    assert len({r["pod"] for r in rows}) == 4


def test_per_user_rate_limit_answers_429_with_retry_after(local_stack):
    """food-review allows 600 calls/minute per user: a burst from one user is cut off with
    429 + retry-after after at least 600 calls, while another user is still served."""
    user = f"heavy-{time.monotonic_ns()}"

    def one(i: int):
        try:
            return chat(local_stack, "food-review", user, f"r{i}").status_code
        except openai.RateLimitError as e:
            return e.response

    # The bucket refills at 10 calls/s: keep bursting until the limit shows (bounded), so a slow
    # machine cannot outrun the test.
    results: list = []
    deadline = time.monotonic() + 90
    while len(results) < 2000 and time.monotonic() < deadline:
        results += run_load(lambda i: one(len(results) + i), 200, concurrency=32, timeout=60)
        if any(getattr(r, "status_code", None) == 429 for r in results):
            break
    limited = [r for r in results if getattr(r, "status_code", None) == 429]
    ok = [r for r in results if r == 200]
    assert limited, f"no request was rate limited: {collections.Counter(map(repr, results)).most_common(4)}"
    assert len(ok) >= 600 and len(ok) + len(limited) == len(results)
    r = limited[0]
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) >= 1
    assert r.headers["x-llm-d-request-dropped-reason"] == "rate-limited"
    # another user, same model, same moment: fine
    assert chat(local_stack, "food-review", user + "-other").status_code == 200
    # the limit is per model: the same user can still use the base model
    assert chat(local_stack, BASE_MODEL, user).status_code == 200


def test_saturated_pool_sheds_sheddable_only(local_stack):
    """Stall every replica (simulator fault control) under a Critical burst so the queues pass the
    saturation threshold: cad-fabricator (Sheddable) gets 429 at once, Critical and Standard
    requests are queued and succeed when the replicas resume. The replicas stay stalled until the
    test has seen the two requests waiting (30 s at most), so a slow machine cannot end the stall
    before the check."""
    pods = [p["name"] for p in local_stack.procs("simulator")]
    for pod in pods:
        r = local_stack.http.post(local_stack.sim_url(pod) + "/sim/control", json={"stall_now": True, "stall_seconds": 30})
        assert r.status_code == 200 and r.json()["stalled"]
    import concurrent.futures as cf

    ex = cf.ThreadPoolExecutor(48)
    try:
        burst = [ex.submit(chat, local_stack, BASE_MODEL, "burst", f"b{i}", timeout=60) for i in range(40)]
        deadline = time.monotonic() + 10
        while True:  # wait until the queues are visible
            waiting = [local_stack.sim_state(p)["waiting"] for p in pods]
            if sum(waiting) / len(waiting) >= 6:
                break
            assert time.monotonic() < deadline, f"queues did not build under the burst: waiting {waiting}"
            time.sleep(0.05)
        time.sleep(0.35)  # the picker scrapes /metrics every 100 ms; let it see the queues
        try:
            chat(local_stack, "cad-fabricator", "shed-check")
            raise AssertionError("the sheddable request was not shed")
        except openai.RateLimitError as e:
            assert e.response.status_code == 429
            assert e.response.headers["x-llm-d-request-dropped-reason"] == "rejected-saturated"
        critical = ex.submit(chat, local_stack, BASE_MODEL, "shed-check", timeout=60)
        standard = ex.submit(chat, local_stack, "food-review", "shed-check", timeout=60)
        time.sleep(0.5)
        assert not critical.done() and not standard.done(), "Critical/Standard failed fast instead of waiting"
        for pod in pods:
            local_stack.http.post(local_stack.sim_url(pod) + "/sim/control", json={"unstall": True})
        assert critical.result(timeout=30).status_code == 200
        assert standard.result(timeout=30).status_code == 200
        assert [f.result(timeout=30).status_code for f in burst] == [200] * 40
    finally:
        for pod in pods:
            local_stack.http.post(local_stack.sim_url(pod) + "/sim/control", json={"unstall": True})
        ex.shutdown(wait=True, cancel_futures=True)
    # once the queues drain, cad-fabricator is served again
    deadline = time.monotonic() + 10
    while True:
        try:
            assert chat(local_stack, "cad-fabricator", "after-shed").status_code == 200
            break
        except openai.RateLimitError:
            assert time.monotonic() < deadline, "cad-fabricator still shed after the pool recovered"
            time.sleep(0.2)
