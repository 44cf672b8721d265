"""Approximate prefix-cache index: chained block hashes → which pods probably hold them.

The prompt is cut into blocks of `block_tokens` pseudo-tokens (~4 bytes each; no tokenizer).
Hash chain, seeded with the model so identical text for different models never matches:
    h0 = xxh64(model);  h_i = xxh64(block_i, seed=h_{i-1})
(one hash call per block: the previous hash is the seed, so each hash covers the whole prefix;
this plain loop measured faster than map/accumulate pipelines on CPython 3.11).

Each pod has an LRU of the hashes recorded for it, sized like its KV cache. A chain is recorded
last block first, so a pod's earlier blocks are always at least as recent as its later ones
and eviction trims chains from the end, as vLLM frees a finished request's tail blocks first.
Every pod therefore holds a *prefix* of any chain it holds part of, which lets `match` find
each pod's run by bisection instead of walking every block.
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
        """Per pod, how many leading blocks it holds. Pods hold chain prefixes (see the module
        docstring), so each pod's run end is found by bisection; pods that end in the same place
        are bisected together as one set."""
        index = self._pods_by_hash
        n = len(hashes)
        if not n:
            return {}
        first = index.get(hashes[0])
        if not first:
            return {}
        hits: dict[str, int] = {}
        last = index.get(hashes[-1])
        if last:
            whole = first & last
            for p in whole:
                hits[p] = n
            first = first - whole
        # Each item: every pod in `pods` holds block lo and none holds block hi.
        work = [(0, n - 1, first)] if first else []
        while work:
            lo, hi, pods = work.pop()
            if hi - lo == 1:
                for p in pods:
                    hits[p] = hi
                continue
            mid = (lo + hi) // 2
            have = index.get(hashes[mid])
            upper = pods & have if have else set()
            if upper:
                work.append((mid, hi, upper))
            if len(upper) < len(pods):
                work.append((lo, mid, pods - upper))
        return hits

    def record(self, pod: str, hashes: list[int], capacity: int | None = None) -> None:
        cap = capacity if capacity and capacity > 0 else self.default_capacity
        lru = self._lru.get(pod)
        if lru is None:
            lru = self._lru[pod] = OrderedDict()
        index = self._pods_by_hash
        for h in reversed(hashes):  # last block first: earlier blocks end up more recent
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
