"""One request as the engine tracks it: its prompt (length, block hashes), its output budget, where
it is (WAITING, RUNNING, FINISHED), its KV blocks, its timings and the callbacks that stream its
tokens and end it."""

from __future__ import annotations

import time
from typing import Callable

WAITING, RUNNING, FINISHED = 0, 1, 2


class Request:
    __slots__ = ("rid", "lora", "prompt_len", "hashes", "out_len", "finish_reason", "stream",
                 "arrival", "first_token_t", "last_token_t", "num_computed", "num_output",
                 "blocks", "held", "hash_idx", "cached_tokens", "status", "on_token", "on_done",
                 "sched_t", "ctx", "tail_fn", "max_tokens", "preemptions")

    def __init__(self, rid: str, prompt_len: int, hashes: list[int], out_len: int,
                 finish_reason: str = "length", lora: str | None = None, stream: bool = False,
                 on_token: Callable | None = None, on_done: Callable | None = None, ctx=None):
        self.rid = rid
        self.lora = lora
        self.prompt_len = prompt_len
        self.hashes = hashes
        self.out_len = out_len
        self.finish_reason = finish_reason
        self.stream = stream
        self.arrival = time.monotonic()
        self.first_token_t = 0.0
        self.last_token_t = 0.0
        self.num_computed = 0
        self.num_output = 0
        self.blocks = 0
        self.held: list[int] = []
        self.hash_idx = 0
        self.cached_tokens: int | None = None
        self.status = WAITING
        self.on_token = on_token
        self.on_done = on_done
        self.sched_t = 0.0
        self.ctx = ctx
        self.tail_fn: Callable | None = None   # -> hashes of full blocks after the prompt's
        self.max_tokens = out_len      # what the request asked for (histograms); out_len unless set
        self.preemptions = 0
