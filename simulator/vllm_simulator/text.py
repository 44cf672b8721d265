"""Generated text: a fixed pseudo-random cycle of 3-letter words.

Every word plus its trailing space is exactly 4 UTF-8 bytes, i.e. exactly one
token under the approximate tokenizer, so re-tokenizing generated text gives
``completion_tokens`` back (useful for multi-turn workloads).
"""

from __future__ import annotations

import array
import hashlib
import random
import zlib

WORDS = (
    "the and for are but not you all any can had her was one our out day get has him his how "
    "man new now old see two way who boy did its let put say she too use sun sky sea map key "
    "box cat dog run red big low top art car job law air end far few fun god hot ice joy kid "
    "lot mix net oil pay raw set tax war yes web age arm bed bit cup cut dry eat eye fit fly "
    "gas hat hit lab lay leg lie mad mom odd own pen pop row sad sit son tie toy van win zoo"
).split()
CYCLE_LEN = 4096


class TextSource:
    def __init__(self, seed: int = 0):
        rnd = random.Random(seed)
        seq = [rnd.randrange(len(WORDS)) for _ in range(CYCLE_LEN)]
        self.tokens = [(WORDS[i] + " ").encode() for i in seq]
        joined = b"".join(self.tokens)
        self.cycle = joined
        self.joined2 = joined + joined          # every word is 4 bytes: token i at [4i, 4i+4)

    def token(self, base: int, i: int) -> bytes:
        return self.tokens[(base + i) % CYCLE_LEN]

    def text(self, base: int, n: int) -> bytes:
        base %= CYCLE_LEN
        if n <= CYCLE_LEN:
            return self.joined2[4 * base:4 * (base + n)]
        full, rest = divmod(n, CYCLE_LEN)
        rot = self.joined2[4 * base:4 * (base + CYCLE_LEN)]
        return rot * full + rot[:4 * rest]


def output_length(prompt: bytes, seed: int, max_tokens: int, ignore_eos: bool = False) -> tuple[int, int, str]:
    """How much the model says: (checksum of the prompt, output tokens, finish reason).

    ``ignore_eos`` (or ``max_tokens`` 1) gives exactly ``max_tokens`` tokens, finish "length".
    Otherwise a deterministic "EOS": a length in ``[ceil(max/2), max]`` fixed by the prompt and
    seed, finish "length" when it equals the maximum, else "stop". The checksum also picks where
    the generated text starts in the word cycle (``TextSource.token(checksum, i)``)."""
    crc = zlib.crc32(prompt, seed & 0xFFFFFFFF)
    if ignore_eos or max_tokens <= 1:
        return crc, max(1, max_tokens), "length"
    lo = (max_tokens + 1) // 2
    n = lo + crc % (max_tokens - lo + 1)
    return crc, n, "length" if n == max_tokens else "stop"


def split_echo_tokens(text: str) -> list[str]:
    """Cut text into ~4-byte pieces on UTF-8 character boundaries (echo mode)."""
    data = text.encode("utf-8")
    out = []
    i, n = 0, len(data)
    while i < n:
        j = min(i + 4, n)
        while j < n and (data[j] & 0xC0) == 0x80:
            j += 1
        out.append(data[i:j].decode("utf-8", errors="replace"))
        i = j
    return out or [" "]


def embedding_vector(raw: bytes, dim: int, seed: int) -> array.array:
    """The model's embedding of some input: a deterministic unit vector (float32) from a hash of
    the input bytes, so equal inputs embed equally and different ones almost orthogonally."""
    digest = hashlib.shake_128(seed.to_bytes(8, "little", signed=True) + raw).digest(dim * 2)
    ints = array.array("h", digest)
    norm = sum(v * v for v in ints) ** 0.5 or 1.0
    return array.array("f", [v / norm for v in ints])
