"""The oracle's TTFT prediction and group homes (no processes)."""

from __future__ import annotations

from benchmarks.oracle import Oracle
from benchmarks.workloads import PlannedRequest

A, B = "127.0.3.1:1", "127.0.3.2:1"


def req(group=-1, prompt=1000, prefix=0, model="m", adapter=False):
    return PlannedRequest(0.0, b"{}", prompt, 16, model, group=group, prefix_tokens=prefix,
                          meta={"adapter": model} if adapter else {})


def state(running=0, waiting=0, used=0, total=1000, gpu_loras=(), running_loras="", max_loras=1):
    return {"running": running, "waiting": waiting, "kv_blocks_used": used, "kv_blocks_total": total,
            "gpu_lora_slots": list(gpu_loras), "running_lora_adapters": running_loras, "max_loras": max_loras}


def make():
    o = Oracle([A, B], {"block_size": 16})
    o.close()
    return o


def test_pending_prefill_makes_a_replica_slower():
    o = make()
    o.pending[A][1] = 8000
    assert o._predict(A, state(), req()) > o._predict(B, state(), req())


def test_resident_prefix_is_cheaper_than_a_cold_replica():
    o = make()
    o.resident[A][7] = None
    r = req(group=7, prompt=5000, prefix=4500)
    assert o._cached(A, r) == 4496 and o._cached(B, r) == 0
    assert o._predict(A, state(), r) < o._predict(B, state(), r)


def test_full_kv_and_missing_lora_are_penalised():
    o = make()
    assert o._predict(A, state(used=999), req()) > o._predict(B, state(), req())
    lr = req(model="sql", adapter=True)
    assert o._predict(A, state(gpu_loras=["chat"], running_loras="chat"), lr) > o._predict(B, state(gpu_loras=["sql"]), lr)


def test_homes_balance_group_request_counts():
    o = make()
    planned = [req(group=g, prefix=100) for g, n in ((0, 6), (1, 3), (2, 3)) for _ in range(n)]
    o.plan_homes(planned)
    assert o.home[0] != o.home[1] and o.home[1] == o.home[2]
    # away from home costs more than at home, all else equal
    r = req(group=1, prompt=200, prefix=100)
    home, away = o.home[1], o.home[0]
    assert o._predict(home, state(), r) < o._predict(away, state(), r)
