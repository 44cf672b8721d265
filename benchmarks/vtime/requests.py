"""An OpenAI request body -> the simulator engine's `Request`, by the simulator server's rules.

The HTTP server (`vllm_simulator.openai_generation.generate`) does this inside its handler; the
rules it applies live in the simulator's `tokenizer` module (token count, chat flattening, block
hashes salted by the LoRA adapter) and are called from here, not copied. What this module
repeats is the plumbing: which model names resolve to which adapter, the max_tokens rules,
the two 400 limits, the deterministic end of generation and the tail hashes that let the next
chat turn hit the previous answer. `tests/unit/test_benchmarks_vtime.py` checks the result
against the server's own handler field by field.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any, Callable

from vllm_simulator import tokenizer as tok
from vllm_simulator.config import SimConfig
from vllm_simulator.engine_request import Request
from vllm_simulator.text import TextSource


@dataclass
class Built:
    request: Request | None
    # (HTTP status, message) when the server would have refused the request.
    error: tuple[int, str] | None = None
    # Generated text of the first n tokens (what the client reads back), for follow-up turns.
    base: int = 0

    def answer(self, text: TextSource, n: int) -> str:
        return text.text(self.base, n).decode()


def build(cfg: SimConfig, body: dict[str, Any], chat: bool, rid: str,
          on_token: Callable[[Request], None], on_done: Callable[..., None]) -> Built:
    if cfg.mode != "random":
        raise ValueError("virtual time supports the simulator's random text mode only")
    name = body.get("model")
    lora = None
    if name not in (None, "") and name not in cfg.served_model_name:
        if name not in {n for n, _ in cfg.lora_modules}:
            return Built(None, (404, f"The model `{name}` does not exist."))
        lora = name
    if chat:
        data = tok.flatten_messages(body.get("messages")).encode("utf-8")
    else:
        prompt = body.get("prompt")
        if not isinstance(prompt, str):
            return Built(None, (400, "virtual time supports string prompts only"))
        data = prompt.encode("utf-8")
    prompt_len = tok.count_tokens(data) or 1
    hashes = tok.block_hashes(data, cfg.block_size, lora or "") if cfg.enable_prefix_caching else []
    mt = body.get("max_completion_tokens")
    if mt is None:
        mt = body.get("max_tokens")
    mt = max(1, int(mt)) if mt is not None else min(cfg.default_max_tokens, max(1, cfg.max_model_len - prompt_len))
    if prompt_len + mt > cfg.max_model_len:
        return Built(None, (400, f"This model's maximum context length is {cfg.max_model_len} tokens."))
    if -(-(prompt_len + mt) // cfg.block_size) > cfg.num_gpu_blocks:
        return Built(None, (400, f"Request needs {prompt_len + mt} tokens of KV cache."))
    crc = zlib.crc32(data, cfg.seed & 0xFFFFFFFF)
    if body.get("ignore_eos") or mt == 1:
        out_len, reason = mt, "length"
    else:
        lo = (mt + 1) // 2
        out_len = lo + crc % (mt - lo + 1)
        reason = "length" if out_len == mt else "stop"
    req = Request(rid, prompt_len, hashes, out_len, reason, lora, True, on_token, on_done)
    if cfg.enable_prefix_caching:
        step = cfg.block_size * tok.BYTES_PER_TOKEN
        tail = data[len(hashes) * step:]
        start = hashes[-1] if hashes else tok.salt_seed(lora or "")
        bs = cfg.block_size
        text = _text_source(cfg.seed)

        def tail_fn(r: Request, tail: bytes = tail, start: int = start) -> list[int]:
            return tok.block_hashes(tail + text.text(crc, r.num_output), bs, start=start)
        req.tail_fn = tail_fn
    return Built(req, None, crc)


_TEXT: dict[int, TextSource] = {}


def _text_source(seed: int) -> TextSource:
    t = _TEXT.get(seed)
    if t is None:
        t = _TEXT[seed] = TextSource(seed)
    return t


def answer_text(cfg: SimConfig, built: Built, n: int) -> str:
    """The text of the first n generated tokens, as the client reads it."""
    return built.answer(_text_source(cfg.seed), n)
