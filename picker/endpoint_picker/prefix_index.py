"""Approximate prefix-cache index: chained block hashes → which pods probably hold them.

The prompt is cut into blocks of `block_tokens` pseudo-tokens (~4 bytes each; no tokenizer).
Hash chain, seeded with the model so identical text for different models never matches:
    h0 = xxh64(model);  h_i = xxh64(block_i, seed=h_{i-1})
(one hash call per block: the previous hash is the seed, so each hash covers the whole prefix).
Each pod has an LRU of the hashes recorded for it, sized like its KV cache.
"""

from __future__ import annotations

from collections import OrderedDict

import xxhash

BYTES_PER_TOKEN = 4
DEFAULT_LRU_CAPACITY = 31_250

_xxh = xxhash.xxh64_intdigest


def block_hashes(model: str, prompt: bytes, block_tokens: int, max_blocks: int) -> list[int]:
    """Chained hashes of the prompt's blocks (the last block may be partial)."""
    step = block_tokens * BYTES_PER_TOKEN
    limit = min(len(prompt), step * max_blocks)
    prev = _xxh(model.encode())
    out = []
    append = out.append
    mv = memoryview(prompt)
    for start in range(0, limit, step):
        prev = _xxh(mv[start : start + step], prev)
        append(prev)
    return out


class PrefixIndex:
    def __init__(self, default_capacity: int = DEFAULT_LRU_CAPACITY) -> None:
        self.default_capacity = default_capacity
        self._pods_by_hash: dict[int, set[str]] = {}
        self._lru: dict[str, OrderedDict[int, None]] = {}

    def match(self, hashes: list[int]) -> dict[str, int]:
        """Per pod, how many leading blocks it holds; the walk stops at the first block no
        remaining pod has. Set operations keep long shared prefixes cheap."""
        index = self._pods_by_hash
        if not hashes:
            return {}
        first = index.get(hashes[0])
        if not first:
            return {}
        alive = set(first)
        hits: dict[str, int] = {}
        n = len(hashes)
        i = 1
        while i < n:
            pods = index.get(hashes[i])
            if not pods:
                break
            if not pods >= alive:  # some pods end their run here
                for p in alive - pods:
                    hits[p] = i
                alive &= pods
                if not alive:
                    return hits
            i += 1
        for p in alive:
            hits[p] = i
        return hits

    def record(self, pod: str, hashes: list[int], capacity: int | None = None) -> None:
        cap = capacity if capacity and capacity > 0 else self.default_capacity
        lru = self._lru.get(pod)
        if lru is None:
            lru = self._lru[pod] = OrderedDict()
        index = self._pods_by_hash
        for h in hashes:
            if h in lru:
                lru.move_to_end(h)
                continue
            lru[h] = None
            pods = index.get(h)
            if pods is None:
                index[h] = {pod}
            else:
                pods.add(pod)
        while len(lru) > cap:
            old, _ = lru.popitem(last=False)
            pods = index.get(old)
            if pods is not None:
                pods.discard(pod)
                if not pods:
                    del index[old]

    def remove_pod(self, pod: str) -> None:
        for h in self._lru.pop(pod, ()):
            pods = self._pods_by_hash.get(h)
            if pods is not None:
                pods.discard(pod)
                if not pods:
                    del self._pods_by_hash[h]

    def pods(self) -> list[str]:
        return list(self._lru)

    def size(self, pod: str) -> int:
        return len(self._lru.get(pod, ()))
