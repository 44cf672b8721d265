"""Failures under load: a replica killed mid-load loses no request that had not started
streaming; with failureMode FailOpen a dead picker does not stop traffic."""

from __future__ import annotations

import os
import signal
import threading
import time

import openai

from .conftest import BASE_MODEL, POOL, port_open, run_load


def _stream_or_plain(client: openai.OpenAI, i: int, user: str):
    """Half streaming, half not. Returns ("ok", response id) or ("failed", started_streaming, error)."""
    msgs = [{"role": "user", "content": f"tell me a long story {i}"}]
    started = False
    try:
        if i % 2:
            raw = client.chat.completions.with_raw_response.create(
                model=BASE_MODEL, messages=msgs, max_tokens=48, stream=True, extra_headers={"x-user-id": user})
            # The response has started once its headers arrived: vLLM (and the simulator) send them
            # before the first token, and from then on no gateway can move the request elsewhere.
            started = True
            ids = {chunk.id for chunk in raw.parse()}
            return ("ok", ids.pop())
        raw = client.chat.completions.with_raw_response.create(model=BASE_MODEL, messages=msgs, max_tokens=48,
                                                               extra_headers={"x-user-id": user})
        return ("ok", raw.parse().id)
    except Exception as e:  # noqa: BLE001
        return ("failed", started, repr(e))


def test_killing_a_replica_mid_load_loses_no_unstarted_request(local_stack):
    client = local_stack.client()
    victim = local_stack.state()["processes"][f"{POOL}-1"]
    killed = threading.Event()

    def kill_soon():
        time.sleep(0.6)
        os.killpg(victim["pid"], signal.SIGKILL)
        killed.set()

    threading.Thread(target=kill_soon, daemon=True).start()
    user = f"kill-{time.monotonic_ns()}"
    results = run_load(lambda i: _stream_or_plain(client, i, user), 400, concurrency=16, timeout=120)
    assert killed.is_set()
    lost = [r for r in results if r[0] == "failed" and not r[1]]
    assert not lost, f"{len(lost)} requests lost before streaming started: {lost[:3]}"
    # Only streams that had already started on the killed replica may break.
    broken = [r for r in results if r[0] == "failed"]
    assert len(broken) <= 16, broken[:3]
    rows = local_stack.access_log(lambda r: r["user"] == user, 400 - len(broken))
    upstream = {r["request_id"]: r["upstream"] for r in rows}
    served_by = {local_stack.pod_at(upstream[r[1].split("-", 1)[1]]) for r in results if r[0] == "ok"}
    assert victim["name"] in served_by and len(served_by) == 4
    assert not [r for r in rows if r["status"] >= 500 and r["pod"] is None and r["attempts"] == 0]
    # The supervisor saw the exit, took the pod out, restarted it, and it is ready again.
    local_stack.wait_all_ready(timeout=30)
    st = local_stack.state()["processes"][victim["name"]]
    assert st["restarts"] >= 1 and st["pid"] != victim["pid"]


def test_failopen_keeps_serving_without_the_picker(local_stack):
    client = local_stack.client()
    picker = local_stack.picker()
    assert picker["failure_mode"] == "FailOpen"
    os.killpg(picker["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 2
    while port_open(picker["grpc_port"]) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not port_open(picker["grpc_port"]), "picker still listening"
    user = f"failopen-{time.monotonic_ns()}"
    t = time.monotonic()

    def one(i: int):
        r = client.chat.completions.with_raw_response.create(
            model="food-review" if i % 3 == 0 else BASE_MODEL, messages=[{"role": "user", "content": f"q{i}"}],
            max_tokens=4, stream=bool(i % 2), extra_headers={"x-user-id": user})
        list(r.parse()) if i % 2 else r.parse()
        return r.status_code

    results = run_load(one, 120, concurrency=8, timeout=60)
    assert results == [200] * 120, [r for r in results if r != 200][:3]
    rows = local_stack.access_log(lambda r: r["user"] == user, 120)
    # Envoy's fallback spread the traffic over the ready pods (no picker answer: round robin).
    pods = {local_stack.pod_at(r["upstream"]) for r in rows}
    assert len(pods) == 4, pods
    # The supervisor restarts the picker after 2 s: most of the burst ran with no picker decision.
    without_picker = [r for r in rows if r["picked"] is None]
    assert len(without_picker) >= 60, (len(without_picker), time.monotonic() - t)
    assert {r["status"] for r in without_picker} == {200}
    # ... and the supervisor brings the picker back.
    local_stack.wait_all_ready(timeout=30)
    assert local_stack.state()["processes"][picker["name"]]["restarts"] >= 1
    r = client.chat.completions.with_raw_response.create(model=BASE_MODEL, messages=[{"role": "user", "content": "back"}],
                                                         max_tokens=2, extra_headers={"x-user-id": user + "-after"})
    assert r.status_code == 200
    rows = local_stack.access_log(lambda r: r["user"] == user + "-after", 1)
    assert rows and rows[0]["picked"]
