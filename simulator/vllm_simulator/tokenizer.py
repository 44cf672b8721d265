"""Approximate tokenizer: no vocabulary, one rule used everywhere.

Rule (documented in README.md):

* Text is encoded as UTF-8 and cut into 4-byte pieces; every piece is one
  token.  ``count = ceil(len(utf8) / 4)``.  The token id is the piece read as a
  little-endian uint32 (the last piece is zero-padded), so ``/detokenize`` can
  invert ``/tokenize`` exactly.
* Chat messages are flattened before counting: each message becomes
  ``<|role|>`` + content + ``\\n`` (content lists keep their ``text`` parts,
  joined with ``\\n``), followed by a trailing ``<|assistant|>`` generation
  prompt.  The flattened text is what is counted, hashed and tokenized.
* A prompt given as a list of integers is taken as token ids as they are.
* Prefix-cache blocks are ``block_size`` tokens = ``4 * block_size`` bytes of
  the flattened UTF-8 text.  Only full blocks are hashed; hashes are chained
  (``h_i = H(h_{i-1}, bytes_i)``) and seeded with the LoRA adapter name (vLLM
  keys blocks by adapter too), so a block only matches when the whole prefix
  before it matches.  When a request finishes, the full blocks of prompt + generated text
  are registered too (continuing the chain), so a follow-up chat turn that repeats the
  conversation hits the previous answer's blocks as well, like vLLM caching decode blocks.
"""

from __future__ import annotations

import hashlib
from typing import Any

BYTES_PER_TOKEN = 4


def flatten_messages(messages: Any) -> str:
    parts: list[str] = []
    if isinstance(messages, list):
        for m in messages:
            if not isinstance(m, dict):
                continue
            role = m.get("role") or "user"
            content = m.get("content")
            if isinstance(content, list):
                texts = []
                for p in content:
                    if isinstance(p, dict):
                        t = p.get("text")
                        if isinstance(t, str):
                            texts.append(t)
                        elif p.get("type") in ("image_url", "input_audio", "video_url"):
                            texts.append("<|media|>")
                    elif isinstance(p, str):
                        texts.append(p)
                content = "\n".join(texts)
            elif content is None:
                content = ""
            elif not isinstance(content, str):
                content = str(content)
            parts.append(f"<|{role}|>{content}\n")
    parts.append("<|assistant|>")
    return "".join(parts)


def last_user_text(messages: Any) -> str:
    if isinstance(messages, list):
        for m in reversed(messages):
            if isinstance(m, dict) and m.get("role") == "user":
                c = m.get("content")
                if isinstance(c, str):
                    return c
                if isinstance(c, list):
                    return "\n".join(p.get("text", "") for p in c if isinstance(p, dict))
    return ""


def count_tokens(data: bytes) -> int:
    return (len(data) + BYTES_PER_TOKEN - 1) // BYTES_PER_TOKEN


def encode(text: str) -> list[int]:
    data = text.encode("utf-8")
    n = len(data)
    pad = (-n) % 4
    if pad:
        data += b"\x00" * pad
    fb = int.from_bytes
    return [fb(data[i:i + 4], "little") for i in range(0, len(data), 4)]


def decode(tokens: list[int]) -> str:
    out = bytearray()
    for t in tokens:
        t = int(t) & 0xFFFFFFFF
        out += t.to_bytes(4, "little")
    return bytes(out).rstrip(b"\x00").decode("utf-8", errors="replace")


def token_strs(tokens: list[int]) -> list[str]:
    return [int(t & 0xFFFFFFFF).to_bytes(4, "little").rstrip(b"\x00").decode("utf-8", errors="replace")
            for t in tokens]


def _seed(salt: str) -> int:
    return int.from_bytes(hashlib.blake2b(salt.encode(), digest_size=8).digest(), "little")


_SEEDS: dict[str, int] = {}


def salt_seed(salt: str) -> int:
    h = _SEEDS.get(salt)
    if h is None:
        h = _SEEDS[salt] = _seed(salt)
    return h


def block_hashes(data: bytes, block_size: int, salt: str = "", max_blocks: int | None = None,
                 start: int | None = None) -> list[int]:
    """Chained hashes of the full ``block_size``-token blocks of ``data``.

    Uses Python's built-in (C-speed) hash of a tuple; values are consistent within
    one process, which is all an in-process prefix cache needs.
    """
    step = block_size * BYTES_PER_TOKEN
    nfull = len(data) // step
    if max_blocks is not None and nfull > max_blocks:
        nfull = max_blocks
    h = salt_seed(salt) if start is None else start
    out = []
    app = out.append
    mv = memoryview(data)
    for i in range(nfull):
        h = hash((h, mv[i * step:(i + 1) * step].tobytes()))
        app(h)
    return out


def token_block_hashes(tokens: list[int], block_size: int, salt: str = "") -> list[int]:
    h = _SEEDS.get(salt)
    if h is None:
        h = _SEEDS[salt] = _seed(salt)
    out = []
    for i in range(len(tokens) // block_size):
        h = hash((h, tuple(tokens[i * block_size:(i + 1) * block_size])))
        out.append(h)
    return out
