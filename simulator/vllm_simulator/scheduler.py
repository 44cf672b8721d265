"""The scheduler of one simulated vLLM replica: what each engine step runs, and how long it takes.

Each step mirrors the vLLM v1 scheduler: running requests first (decode = 1 token, unfinished
chunked prefills take more), preempting the most recently admitted running request when the KV
cache has no free block (recompute preemption); then, if nothing was preempted, waiting requests
FCFS while ``max_num_seqs`` and the ``max_num_batched_tokens`` budget allow, skipping requests
whose LoRA adapter would exceed ``max_loras`` adapters in the batch.  The step duration is
computed arithmetically from the batch; once it has passed the step is applied: computed tokens
advance, prompt blocks get registered in the prefix cache, every request whose known tokens are
all computed samples one token.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque

from .config import SimConfig
from .engine_request import FINISHED, RUNNING, WAITING, Request
from .kv_cache import KVCache
from .metrics import Metrics


class Scheduler:
    """The queues, KV cache and LoRA slots of one replica, and the step that advances them:
    `_schedule` plans a batch and its duration, `_apply` applies it once that time has passed.
    Nothing here waits or sleeps; engine.py (real time) and benchmarks/vtime (simulated time)
    drive it."""

    def __init__(self, cfg: SimConfig, metrics: Metrics | None = None):
        self.cfg = cfg
        self.metrics = metrics or Metrics()
        self.kv = KVCache(cfg.num_gpu_blocks, cfg.enable_prefix_caching)
        self.running: list[Request] = []
        self.waiting: deque[Request] = deque()
        self.version = 0
        self.steps = 0
        self.metrics.bind_max_model_len(cfg.max_model_len)
        # vllm:lora_requests_info as real vLLM keeps it (vllm/v1/metrics/stats.py LoRARequestStates):
        # an adapter is tracked from its request's first output until the request ends (preempted
        # ones stay), and the gauge is set every step with the tracked adapters in *both* lists.
        # Every label combination ever set stays on the page with the time it was last current;
        # no sample before the first step. Bounded to the 32 most recent combinations.
        self.lora_in_flight: dict[str, int] = {}
        self.lora_series: OrderedDict[str, float] = OrderedDict()
        self.gpu_loras: OrderedDict[str, None] = OrderedDict()
        self.cpu_loras: OrderedDict[str, None] = OrderedDict()
        self.lora_loads = 0
        self.n_lora_reqs = 0        # LoRA requests in running + waiting (skip list building if 0)
        self.last_step: dict = {}
        self._prev_apply_t = -1.0

    # ------------------------------------------------------------------ queues and adapters
    def add(self, req: Request) -> None:
        """Queue a request; a later step admits it."""
        if req.lora:
            self.n_lora_reqs += 1
        req.status = WAITING
        self.waiting.append(req)
        self.version += 1

    def abort(self, req: Request) -> None:
        if req.status == FINISHED:
            return
        if req.status == WAITING:
            try:
                self.waiting.remove(req)
            except ValueError:
                pass
        else:
            try:
                self.running.remove(req)
            except ValueError:
                pass
            self.kv.release(req.held, req.blocks - len(req.held))
            req.held = []
            req.blocks = 0
        self._end_aborted(req)

    def _end_aborted(self, req: Request) -> None:
        """A request leaves the queues unfinished: counted as an `abort` (vLLM's finished reason)."""
        req.status = FINISHED
        if req.lora:
            self.n_lora_reqs -= 1
            self._untrack_lora(req)
        self.metrics.success["abort"] += 1
        self.version += 1

    def _untrack_lora(self, req: Request) -> None:
        if req.num_output and req.lora in self.lora_in_flight:
            left = self.lora_in_flight[req.lora] - 1
            if left:
                self.lora_in_flight[req.lora] = left
            else:
                del self.lora_in_flight[req.lora]

    def lora_deferred(self) -> int:
        """Waiting requests held back by the LoRA budget (vLLM's waiting reason "deferred")."""
        if not self.n_lora_reqs:
            return 0
        active = {r.lora for r in self.running if r.lora}
        if len(active) < self.cfg.max_loras:
            return 0
        return sum(1 for r in self.waiting if r.lora and r.lora not in active)

    def cache_lora(self, name: str) -> None:
        """Put an adapter in the CPU LRU cache (what /v1/load_lora_adapter does)."""
        c = self.cpu_loras
        c[name] = None
        c.move_to_end(name)
        while len(c) > self.cfg.max_cpu_loras:
            c.popitem(last=False)

    def drop_lora(self, name: str) -> None:
        self.cpu_loras.pop(name, None)
        self.gpu_loras.pop(name, None)
        self.version += 1

    # ------------------------------------------------------------------ views
    def lora_lists(self) -> tuple[str, str]:
        if not self.n_lora_reqs:
            return "", ""
        run = dict.fromkeys(r.lora for r in self.running if r.lora)
        wait = dict.fromkeys(r.lora for r in self.waiting if r.lora)
        return ",".join(run), ",".join(wait)

    # ------------------------------------------------------------------ step
    def _preempt(self, victim: Request) -> None:
        self.kv.release(victim.held, victim.blocks - len(victim.held))
        victim.held = []
        victim.blocks = 0
        victim.num_computed = 0
        victim.hash_idx = 0
        victim.status = WAITING
        victim.preemptions += 1
        self.waiting.appendleft(victim)
        self.metrics.preemptions += 1

    def _activate_lora(self, name: str) -> float:
        g = self.gpu_loras
        if name in g:
            g.move_to_end(name)
            return 0.0
        cfg = self.cfg
        cost = cfg.lora_load_gpu_s if name in self.cpu_loras else cfg.lora_load_disk_s
        self.cache_lora(name)
        if len(g) >= cfg.max_loras:
            active = {r.lora for r in self.running}
            for k in g:
                if k not in active:
                    del g[k]
                    break
            else:
                g.popitem(last=False)
        g[name] = None
        self.lora_loads += 1
        return cost

    def _schedule(self):
        cfg = self.cfg
        kv = self.kv
        bs = cfg.block_size
        budget = cfg.max_num_batched_tokens
        running = self.running
        sched: list[tuple[Request, int]] = []
        preempted = False
        i = 0
        while i < len(running) and budget > 0:
            req = running[i]
            n = req.prompt_len + req.num_output - req.num_computed
            if n > budget:
                n = budget
            extra = -(-(req.num_computed + n) // bs) - req.blocks
            if extra > 0:      # most decode steps stay inside the last block
                while extra > kv.total - kv.used:
                    victim = running.pop()
                    self._preempt(victim)
                    preempted = True
                    if victim is req:
                        break
                if req.status != RUNNING:
                    break
                kv.alloc(extra)
                req.blocks += extra
            sched.append((req, n))
            budget -= n
            i += 1

        lora_cost = 0.0
        if not preempted and self.waiting:
            waiting = self.waiting
            active = {r.lora for r in running if r.lora}
            skipped = []
            max_loras = cfg.max_loras
            now = time.monotonic()
            m = self.metrics
            while waiting and budget > 0 and len(running) < cfg.max_num_seqs:
                req = waiting[0]
                lora = req.lora
                if lora and lora not in active and len(active) >= max_loras:
                    skipped.append(waiting.popleft())
                    continue
                total = req.prompt_len + req.num_output
                hit, hit_ev = kv.match(req.hashes, (total - 1) // bs) if req.hashes else (0, 0)
                hit_tokens = hit * bs
                n = total - hit_tokens
                if n > budget:
                    n = budget
                target = -(-(hit_tokens + n) // bs)
                new_blocks = target - hit
                if new_blocks + hit_ev > kv.available():
                    break
                waiting.popleft()
                if hit:
                    held = req.hashes[:hit]
                    kv.acquire(held)
                    req.held = held
                kv.alloc(new_blocks)
                req.blocks = target
                req.hash_idx = hit
                req.num_computed = hit_tokens
                m.prefix_queries += total
                m.prefix_hits += hit_tokens
                if req.cached_tokens is None:
                    req.cached_tokens = hit_tokens
                    req.sched_t = now
                    m.queue.observe(now - req.arrival)
                if lora and lora not in active:
                    active.add(lora)
                    lora_cost += self._activate_lora(lora)
                elif lora:
                    self.gpu_loras.move_to_end(lora)
                req.status = RUNNING
                running.append(req)
                sched.append((req, n))
                budget -= n
            if skipped:
                waiting.extendleft(reversed(skipped))

        if not sched:
            return None, 0.0
        prefill_tokens = 0
        attn = 0.0
        decode = 0
        ctx = 0
        has_lora = False
        for req, n in sched:
            c0 = req.num_computed
            if n == 1 and req.num_output and c0 + 1 == req.prompt_len + req.num_output:
                decode += 1
                ctx += c0 + 1
            else:
                prefill_tokens += n
                c1 = c0 + n
                attn += (c1 * c1 - c0 * c0) * 0.5
            if req.lora:
                has_lora = True
        compute = (prefill_tokens * cfg.prefill_per_token_s + attn * cfg.prefill_attn_per_token_ctx_s
                   + decode * cfg.decode_per_seq_s + ctx * cfg.kv_read_per_token_s)
        if has_lora:
            compute *= 1.0 + cfg.lora_step_overhead
        dur = cfg.step_overhead_s + compute + lora_cost
        self.last_step = {"batch": len(sched), "prefill_tokens": prefill_tokens, "decode_seqs": decode,
                          "context_tokens": ctx, "lora_load_s": lora_cost, "duration_s": dur}
        return sched, dur

    def _apply(self, sched) -> None:
        kv = self.kv
        bs = self.cfg.block_size
        m = self.metrics
        now = time.monotonic()
        gen = 0
        done = []
        prefix = kv.enable
        prev = self._prev_apply_t
        same_itl = 0            # tokens whose previous token came at the previous step's end
        itl_obs = m.itl.observe
        for req, n in sched:
            if req.status != RUNNING:
                continue        # aborted (or preempted) while the step ran
            c = req.num_computed + n
            req.num_computed = c
            if prefix and req.hash_idx < len(req.hashes):
                full = c // bs
                hashes = req.hashes
                if full > len(hashes):
                    full = len(hashes)
                while req.hash_idx < full:
                    h = hashes[req.hash_idx]
                    if kv.register(h):
                        req.held.append(h)
                    req.hash_idx += 1
            if c == req.prompt_len + req.num_output:
                req.num_output += 1
                gen += 1
                if req.num_output == 1:
                    m.ttft.observe(now - req.arrival)
                    m.prompt_tokens += req.prompt_len
                    m.prompt_cached += req.cached_tokens or 0
                    req.first_token_t = now
                    if req.lora:
                        self.lora_in_flight[req.lora] = self.lora_in_flight.get(req.lora, 0) + 1
                elif req.last_token_t == prev:
                    same_itl += 1
                else:
                    itl_obs(now - req.last_token_t)
                req.last_token_t = now
                if req.num_output >= req.out_len:
                    done.append(req)
                elif req.stream:
                    req.on_token(req)
        m.generation_tokens += gen
        if same_itl:
            m.itl.observe_many(now - prev, same_itl)
        self._prev_apply_t = now
        if done:
            for req in done:
                if prefix and req.tail_fn is not None:
                    self._register_tail(req)
                req.status = FINISHED
                if req.lora:
                    self.n_lora_reqs -= 1
                    self._untrack_lora(req)
                kv.release(req.held, req.blocks - len(req.held))
                req.held = []
                req.blocks = 0
                m.success[req.finish_reason] += 1
                m.finished(prompt_len=req.prompt_len, cached=req.cached_tokens or 0, generated=req.num_output,
                           max_tokens=req.max_tokens, preempted=req.preemptions, arrival=req.arrival,
                           scheduled=req.sched_t, first_token=req.first_token_t, last_token=req.last_token_t, now=now)
            self.running = [r for r in self.running if r.status == RUNNING]
            for req in done:
                try:
                    req.on_done(req)
                except Exception:  # a broken sink must not kill the engine
                    pass
        m.iteration_tokens.observe(sum(n for _, n in sched))
        key = ",".join(self.lora_in_flight)
        ser = self.lora_series
        ser[key] = time.time()
        ser.move_to_end(key)
        if len(ser) > 32:
            ser.popitem(last=False)
        self.steps += 1
        self.version += 1

    def _register_tail(self, req: Request) -> None:
        """Cache the full blocks of generated text (vLLM hashes decode blocks as they fill)."""
        try:
            extra = req.tail_fn(req)
        except Exception:
            return
        kv = self.kv
        limit = req.num_computed // self.cfg.block_size - len(req.hashes)
        private = req.blocks - len(req.held)
        for h in extra[:max(0, min(limit, private))]:
            if kv.register(h):
                req.held.append(h)

    def _fail_unschedulable(self) -> None:
        # Nothing is running and the head of the queue cannot be admitted: it can
        # never fit (larger than the whole KV cache).  vLLM rejects these up front.
        req = self.waiting.popleft()
        self._end_aborted(req)
        if req.on_done:
            try:
                req.on_done(req, error="request does not fit in the KV cache")
            except Exception:
                pass
