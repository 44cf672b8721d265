"""Work for the shared engine model from any runtime's API: text generation and prefill-only jobs.

Every runtime the simulator speaks (Caikit, TGIS, KServe v2) queues its requests on the same
`Engine` as the OpenAI API, so queueing, continuous batching, chunked prefill, KV blocks and the
time scale behave identically whatever the protocol. A generation job produces tokens from the
replica's text source with the same deterministic length rule as the OpenAI API
(`text.output_length`); a prefill job (embeddings, tensor inference) is one forward pass over
its input: `prompt_tokens` of prefill and a single sampled step.

Callbacks run on the engine's event loop: `on_token(job, i)` for each generated token when
streaming, `on_done(job, error)` once at the end (`error` is set when the engine rejects it).
`cancel()` aborts a job whose client went away (KV blocks freed, counted as `abort`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Callable

from .. import tokenizer as tok
from ..engine_request import FINISHED, Request
from ..text import output_length

TokenCallback = Callable[["Job", int], None]
DoneCallback = Callable[["Job", "str | None"], None]


@dataclass
class Job:
    replica: object
    prompt_tokens: int
    max_tokens: int
    base: int = 0
    finish: str = "length"
    """'length' (hit max_tokens) or 'stop' (the simulated EOS)."""
    request: Request | None = field(default=None, repr=False)

    @property
    def generated(self) -> int:
        return self.request.num_output if self.request is not None else 0

    def token(self, i: int) -> str:
        """The i-th generated token's text."""
        return self.replica.text.token(self.base, i).decode()

    def text(self, n: int | None = None) -> str:
        """The first n generated tokens (all generated so far by default)."""
        return self.replica.text.text(self.base, self.generated if n is None else n).decode()

    def cancel(self) -> None:
        req = self.request
        if req is not None and req.status != FINISHED:
            self.replica.engine.abort(req)


def _submit(job: Job, out_len: int, hashes: list[int], stream: bool,
            on_token: TokenCallback | None, on_done: DoneCallback) -> Job:
    def token_cb(req: Request) -> None:
        if on_token is not None:
            on_token(job, req.num_output - 1)

    def done_cb(req: Request, error: str | None = None) -> None:
        on_done(job, error)

    job.request = Request(uuid.uuid4().hex, job.prompt_tokens, hashes, out_len, job.finish, None,
                          stream, token_cb, done_cb, job)
    job.replica.engine.add(job.request)
    return job


def generate(replica, prompt: str, max_tokens: int, on_done: DoneCallback,
             on_token: TokenCallback | None = None, ignore_eos: bool = False) -> Job:
    """Queue a text generation of at most `max_tokens` tokens for `prompt`."""
    cfg = replica.cfg
    data = prompt.encode("utf-8")
    prompt_tokens = max(1, tok.count_tokens(data))
    base, out_len, finish = output_length(data, cfg.seed, max_tokens, ignore_eos)
    hashes = tok.block_hashes(data, cfg.block_size) if cfg.enable_prefix_caching else []
    job = Job(replica, prompt_tokens, max_tokens, base, finish)
    return _submit(job, out_len, hashes, on_token is not None, on_token, on_done)


def prefill(replica, prompt_tokens: int, on_done: DoneCallback) -> Job:
    """Queue one forward pass over `prompt_tokens` inputs (embeddings, tensor inference)."""
    job = Job(replica, max(1, prompt_tokens), 1)
    return _submit(job, 1, [], False, None, on_done)


def fits(replica, prompt_tokens: int, max_tokens: int) -> str | None:
    """Why the engine could never serve this request (context or KV cache), else None."""
    cfg = replica.cfg
    if prompt_tokens + max_tokens > cfg.max_model_len:
        return f"{prompt_tokens} input tokens plus {max_tokens} new tokens exceed the maximum sequence length {cfg.max_model_len}"
    if -(-(prompt_tokens + max_tokens) // cfg.block_size) > cfg.num_gpu_blocks:
        return f"request needs {prompt_tokens + max_tokens} tokens of KV cache; the cache holds {cfg.num_gpu_blocks * cfg.block_size}"
    return None
