"""Oracle in virtual time: a bound with perfect knowledge, not a deployable design.

At the moment of each decision it reads every replica's engine directly (running and waiting
requests, free KV blocks, LoRA slots, and the *actual* prefix cache: `KVCache.match` on the
request's own block hashes), knows each replica's speed (its timing constants: a slower
replica predicts slower), knows which requests it has sent where that have not started
producing tokens, and knows the workload's grouping (shared-prefix group, document,
conversation) with each group's expected request count. It skips nothing the picker pays for
except staleness: there is no scrape.

Cost of sending request q to replica r (simulated seconds, greedy minimum, random ties):

    prefill  = pending_uncached(r) + (P - cached_r(q))
    ttft     = prefill * prefill_per_token + attention(P, cached)
               + (ceil(prefill / budget) + 1) * (step_overhead + running(r) * decode_per_seq)
               + slot_wait(r) + kv_wait(r, q) + lora_wait(r, q)
    cost     = ttft + away(r, q)

* slot_wait: `max_num_seqs` taken: the time until the earliest running request finishes;
* kv_wait: the request's uncached blocks exceed the free blocks: the time for the running
  requests closest to finishing to free enough;
* lora_wait: the adapter is not on the GPU (load time) and, when `max_loras` other adapters are
  in the batch, the time until one of them drains;
* away: a grouped request sent anywhere but its group's home replica will leave a second copy of
  the prefix there: its prefill is charged `eviction_weight` times. A request whose group has a
  request pending on r counts its prefix as cached there (it will be by the time it runs). Homes are assigned on a
  group's first request to the replica with the least expected work (perfect knowledge of how
  many requests each group will send).
"""

from __future__ import annotations

import math
import random
from typing import Any, Sequence

import orjson
from vllm_simulator import tokenizer as tok

from ..workloads import PlannedRequest
from .replica import VirtualReplica


class OracleRouter:
    def __init__(self, replicas: Sequence[VirtualReplica], rng: random.Random, eviction_weight: float = 2.0) -> None:
        self.replicas = list(replicas)
        self.rng = rng
        self.eviction_weight = eviction_weight
        self.home: dict[int, int] = {}
        self.home_load = [0.0] * len(self.replicas)
        # request id -> (uncached tokens, group) of requests sent and not yet at their first token
        self.pending: list[dict[str, tuple[int, int]]] = [{} for _ in self.replicas]
        self._hash_cache: tuple[bytes, str, list[int]] | None = None

    def _hashes(self, pr: PlannedRequest, rep: VirtualReplica, data: bytes, lora: str) -> list[int]:
        c = self._hash_cache
        if c is not None and c[0] is data and c[1] == f"{rep.cfg.block_size}/{lora}":
            return c[2]
        h = tok.block_hashes(data, rep.cfg.block_size, lora)
        self._hash_cache = (data, f"{rep.cfg.block_size}/{lora}", h)
        return h

    def _home(self, pr: PlannedRequest) -> int | None:
        if pr.group < 0:
            return None
        h = self.home.get(pr.group)
        if h is None:
            h = min(range(len(self.replicas)), key=lambda i: (self.home_load[i], i))
            self.home[pr.group] = h
            self.home_load[h] += float(pr.meta.get("group_requests", 1)) * max(1, pr.prefix_tokens)
        return h

    def _step(self, cfg, running: int) -> float:
        return cfg.step_overhead_s + running * cfg.decode_per_seq_s

    def _cost(self, i: int, pr: PlannedRequest, data: bytes, prompt: int, lora: str, home: int | None) -> tuple[float, int]:
        rep = self.replicas[i]
        cfg, eng = rep.cfg, rep.engine
        bs = cfg.block_size
        total = prompt + pr.max_tokens
        hit = eng.kv.match(self._hashes(pr, rep, data, lora), (total - 1) // bs)[0] if cfg.enable_prefix_caching else 0
        cached = hit * bs
        pending = self.pending[i]
        if pr.group >= 0 and any(g == pr.group for _, g in pending.values()):
            cached = max(cached, (min(pr.prefix_tokens, prompt - 1) // bs) * bs)   # cached by the time it runs
        own = max(1, prompt - cached)
        prefill = sum(u for u, _ in pending.values()) + own
        running = len(eng.running)
        step = self._step(cfg, running)
        t = (prefill * cfg.prefill_per_token_s
             + cfg.prefill_attn_per_token_ctx_s * (prompt ** 2 - cached ** 2) / 2
             + (math.ceil(prefill / cfg.max_num_batched_tokens) + 1) * step)
        remaining = sorted(r.out_len - r.num_output for r in eng.running)
        if running + len(eng.waiting) >= cfg.max_num_seqs and remaining:
            k = min(len(remaining) - 1, running + len(eng.waiting) - cfg.max_num_seqs)
            t += remaining[k] * step
        need = -(-(own + pr.max_tokens) // bs)
        free = eng.kv.total - eng.kv.used
        if need > free and remaining:
            t += remaining[min(len(remaining) - 1, len(remaining) // 2)] * step
        if lora:
            if lora not in eng.gpu_loras:
                t += cfg.lora_load_gpu_s if lora in eng.cpu_loras else cfg.lora_load_disk_s
            active = {r.lora for r in eng.running if r.lora}
            if lora not in active and len(active) >= cfg.max_loras:
                t += min((r.out_len - r.num_output for r in eng.running if r.lora), default=0) * step
        if home is not None and home != i:
            t += self.eviction_weight * pr.prefix_tokens * cfg.prefill_per_token_s
        return t, own

    def route(self, pr: PlannedRequest) -> tuple[int, Any]:
        data = _prompt_bytes(pr)
        lora = pr.meta.get("adapter") or ""
        prompt = tok.count_tokens(data) or 1
        home = self._home(pr)
        best: list[tuple[int, int]] = []
        best_t = math.inf
        for i in range(len(self.replicas)):
            t, own = self._cost(i, pr, data, prompt, lora, home)
            if t < best_t - 1e-12:
                best, best_t = [(i, own)], t
            elif t <= best_t + 1e-12:
                best.append((i, own))
        i, own = best[0] if len(best) == 1 else self.rng.choice(best)
        self.pending[i][pr.request_id] = (own, pr.group)
        return i, (i, pr.request_id)

    def first_token(self, handle: tuple[int, str]) -> None:
        self.pending[handle[0]].pop(handle[1], None)

    def finished(self, handle: tuple[int, str]) -> None:
        self.pending[handle[0]].pop(handle[1], None)


def _prompt_bytes(pr: PlannedRequest) -> bytes:
    """The text the replica hashes (flattened chat or the prompt string), cached on the request."""
    data = pr.meta.get("_prompt_bytes")
    if data is None:
        body = orjson.loads(pr.body)
        if "messages" in body:
            data = tok.flatten_messages(body["messages"]).encode()
        else:
            data = str(body.get("prompt", "")).encode()
        pr.meta["_prompt_bytes"] = data
    return data
