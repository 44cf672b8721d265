"""Oracle router: routes each request straight to the replica with the lowest predicted TTFT.

It is a *bound*, not a deployable design: it reads every replica's engine state from the
simulator (`GET /sim/state`: running/waiting sequences, KV blocks, LoRA slots; polled every
10 ms real = 2.5 ms simulated at time scale 4, five times fresher than the picker's 50 ms
scrape, never blocking a send), knows the whole planned workload (each request's shared-prefix
group and exact output length), is the only client (so it knows exactly which requests are in
flight where and how much un-prefilled work each replica has), and skips the gateway hop.

Predicted TTFT on replica r for a request with P prompt tokens, of which C are expected to be
cached on r (its group's prefix was sent to r and the LRU residency estimate says it still
fits):

    prefill_tokens = pending_uncached(r) + (P - C)
    steps          = ceil(prefill_tokens / max_num_batched_tokens) + 1
    ttft(r)        = prefill_tokens * prefill_per_token
                     + steps * (step_overhead + running(r) * decode_per_seq)
                     + slot_wait(r) + lora_penalty + kv_penalty + away_penalty

* slot_wait: when the oracle's in-flight requests on r fill max_num_seqs, the time until enough
  of them finish decoding (output lengths known, progress estimated from first-token times);
* kv_penalty: r's free KV blocks cannot hold the request (it would queue or preempt);
* lora_penalty: the adapter is not in a GPU slot (+ a batch drain if all slots are busy);
* away_penalty: r is not the group's home replica: the prefix prefill it will cost again later
  (eviction_weight x prefix prefill time). Homes come from the planned workload: groups spread
  over replicas balancing their request counts (longest first), so groups are not scattered.

Timing constants are the simulator's defaults (H100, Llama-3.1-8B). Residency is corrected from
each response's `usage.prompt_tokens_details.cached_tokens`.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import OrderedDict
from typing import Any

import orjson

from .httpclient import Pool, Response
from .workloads import PlannedRequest

STEP_OVERHEAD_S = 0.008
DECODE_PER_SEQ_S = 0.0001
PREFILL_PER_TOKEN_S = 30e-6
LORA_LOAD_S = 0.1


class Oracle:
    def __init__(self, addresses: list[str], cluster: dict[str, Any], seed: int = 0,
                 eviction_weight: float = 2.0, poll_s: float = 0.01) -> None:
        self.eviction_weight = eviction_weight
        self.home: dict[int, str] = {}
        self.max_num_seqs = int(cluster.get("max_num_seqs", 256))
        self.time_scale = float(cluster.get("time_scale", 1.0))
        self.jobs: dict[str, dict[int, list]] = {a: {} for a in addresses}   # rid -> [t_first, out_len]
        self.states: dict[str, dict[str, Any]] = {}
        self.poll_s = poll_s
        self._poller: asyncio.Task | None = None
        self.addresses = addresses
        self.pools = {a: Pool(a.rpartition(":")[0], int(a.rpartition(":")[2]), limit=4096) for a in addresses}
        self.state_pools = {a: Pool(a.rpartition(":")[0], int(a.rpartition(":")[2]), limit=64) for a in addresses}
        self.block_size = int(cluster.get("block_size", 16))
        self.budget = int(cluster.get("max_num_batched_tokens", 8192))
        self.pending: dict[str, dict[int, int]] = {a: {} for a in addresses}   # req id -> uncached tokens
        self.resident: dict[str, OrderedDict[int, None]] = {a: OrderedDict() for a in addresses}
        self.capacity_tokens: dict[str, int] = {}
        self.rng = random.Random(seed)
        self.seq = 0
        self.decisions = 0

    async def _state(self, a: str) -> dict[str, Any] | None:
        r = await self.state_pools[a].request("GET", "/sim/state", timeout=5)
        if r.status != 200:
            return None
        return orjson.loads(r.body)

    def _cached(self, a: str, pr: PlannedRequest) -> int:
        if pr.group < 0 or pr.group not in self.resident[a]:
            return 0
        return (pr.prefix_tokens // self.block_size) * self.block_size

    def _slot_wait(self, a: str) -> float:
        """Simulated seconds until a batch slot frees when max_num_seqs are taken (FCFS)."""
        jobs = self.jobs[a]
        k = len(jobs) - self.max_num_seqs
        if k < 0:
            return 0.0
        now = time.monotonic()
        step = STEP_OVERHEAD_S + DECODE_PER_SEQ_S * min(len(jobs), self.max_num_seqs)
        rem = []
        for t_first, out_len in jobs.values():
            done = 0.0 if t_first is None else (now - t_first) / self.time_scale / step
            rem.append(max(0.0, out_len - done) * step)
        rem.sort()
        # the (k+1)-th earliest finisher frees the slot this request waits for
        return rem[k] if k < len(rem) else rem[-1]

    def _predict(self, a: str, st: dict[str, Any] | None, pr: PlannedRequest) -> float:
        cached = self._cached(a, pr)
        prefill = sum(self.pending[a].values()) + pr.prompt_tokens - cached
        running = st["running"] if st else 0
        steps = math.ceil(prefill / self.budget) + 1
        t = prefill * PREFILL_PER_TOKEN_S + steps * (STEP_OVERHEAD_S + running * DECODE_PER_SEQ_S)
        t += self._slot_wait(a)
        if st:
            free = st["kv_blocks_total"] - st["kv_blocks_used"]
            need = math.ceil((pr.prompt_tokens - cached + pr.max_tokens) / self.block_size)
            if need > free:
                t += 1.0 + st["waiting"] * 0.1
            lora = pr.model if pr.meta.get("adapter") else None
            if lora and lora not in (st.get("gpu_lora_slots") or []):
                t += LORA_LOAD_S
                if len(set(filter(None, (st.get("running_lora_adapters") or "").split(",")))) >= st.get("max_loras", 1):
                    t += 0.5
        # Not myopic: a group served away from its home replica costs a prefill there now and
        # evicts another group's prefix later; charge that future prefill.
        if pr.group >= 0 and pr.prefix_tokens and self.home.get(pr.group) not in (None, a):
            t += self.eviction_weight * pr.prefix_tokens * PREFILL_PER_TOKEN_S
        return t

    def plan_homes(self, planned: list[PlannedRequest]) -> None:
        """Perfect workload knowledge: give every shared-prefix group a home replica, balancing the
        groups' request counts (longest-processing-time first) within each replica's KV capacity."""
        counts: dict[int, int] = {}
        prefix: dict[int, int] = {}
        for pr in planned:
            if pr.group >= 0:
                counts[pr.group] = counts.get(pr.group, 0) + 1
                prefix[pr.group] = pr.prefix_tokens
        load = {a: 0 for a in self.addresses}
        for g in sorted(counts, key=lambda g: -counts[g]):
            a = min(self.addresses, key=lambda a: (load[a], a))
            self.home[g] = a
            load[a] += counts[g]

    def _touch(self, a: str, pr: PlannedRequest, st: dict[str, Any] | None) -> None:
        if pr.group < 0:
            return
        res = self.resident[a]
        res[pr.group] = None
        res.move_to_end(pr.group)
        if st:
            self.capacity_tokens[a] = int(st["kv_blocks_total"] * self.block_size * 0.9)
        cap = self.capacity_tokens.get(a)
        if cap and pr.prefix_tokens:
            while len(res) * pr.prefix_tokens > cap and len(res) > 1:
                res.popitem(last=False)

    async def _poll(self) -> None:
        while True:
            states = await asyncio.gather(*(self._state(a) for a in self.addresses), return_exceptions=True)
            for a, st in zip(self.addresses, states):
                if not isinstance(st, BaseException) and st is not None:
                    self.states[a] = st
            await asyncio.sleep(self.poll_s)

    async def start(self) -> None:
        """Start polling every replica's /sim/state (every poll_s real seconds)."""
        states = await asyncio.gather(*(self._state(a) for a in self.addresses), return_exceptions=True)
        for a, st in zip(self.addresses, states):
            if not isinstance(st, BaseException) and st is not None:
                self.states[a] = st
        self._poller = asyncio.get_running_loop().create_task(self._poll())

    async def send(self, pr: PlannedRequest) -> Response:
        states = [self.states.get(a) for a in self.addresses]
        best, best_t = [], math.inf
        for a, st in zip(self.addresses, states):
            if isinstance(st, BaseException):
                st = None
            t = self._predict(a, st, pr)
            if t < best_t - 1e-9:
                best, best_t = [(a, st)], t
            elif abs(t - best_t) <= 1e-9:
                best.append((a, st))
        a, st = self.rng.choice(best)
        self.seq += 1
        rid = self.seq
        self.pending[a][rid] = pr.prompt_tokens - self._cached(a, pr)
        job = self.jobs[a][rid] = [None, pr.max_tokens]

        def first() -> None:
            self.pending[a].pop(rid, None)
            job[0] = time.monotonic()
        self._touch(a, pr, st)
        self.decisions += 1
        try:
            r = await self.pools[a].request("POST", "/v1/completions", pr.body, stream=True, timeout=600,
                                            on_first=first)
        finally:
            self.pending[a].pop(rid, None)
            self.jobs[a].pop(rid, None)
        if r.usage and pr.group >= 0:
            cached = int((r.usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
            if cached < pr.prefix_tokens // 2:
                self.resident[a].pop(pr.group, None)
                self.resident[a][pr.group] = None   # it is resident now (just prefilled)
        return r

    def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
        for p in (*self.pools.values(), *self.state_pools.values()):
            p.close()
