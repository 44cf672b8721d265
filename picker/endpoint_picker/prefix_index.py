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

Per-request cost for long prompts (a 220 KB prompt is ~860 blocks) is kept off the hot path
without changing any result: `BlockHasher` reuses the hashes of the longest block-aligned prefix
a recent prompt shares with this one (found with memcmp-speed `startswith`; a chain hash depends
only on the bytes before it, so the reused values are exactly what hashing would give), and
`record` refreshes the blocks the pod is known to hold (the match it was picked on) with one
C-level pass instead of a membership test per block.
"""

from __future__ import annotations

from collections import OrderedDict, deque

import xxhash

BYTES_PER_TOKEN = 4
DEFAULT_LRU_CAPACITY = 31_250

_xxh = xxhash.xxh64_intdigest


def block_hashes(model: str, prompt: bytes, block_tokens: int, max_blocks: int) -> list[int]:
    """Chained hashes of the prompt's blocks (the last block may be partial)."""
    step = block_tokens * BYTES_PER_TOKEN
    return _chain(_xxh(model.encode()), prompt, 0, min(len(prompt), step * max_blocks), step, [])


def _chain(prev: int, prompt: bytes, start: int, limit: int, step: int, out: list[int]) -> list[int]:
    """Append the chain hashes of prompt[start:limit] (blocks of `step` bytes) to `out`."""
    append = out.append
    mv = memoryview(prompt)
    for pos in range(start, limit, step):
        prev = _xxh(mv[pos : pos + step], prev)
        append(prev)
    return out


class BlockHasher:
    """`block_hashes` that reuses a recent prompt's hashes for the whole blocks both share.

    Remembers the last `entries` prompts of at least `min_blocks` blocks, keyed by model, block
    size and first block; a new prompt with the same first block is compared with that prompt
    (bytes.startswith: memcmp) and only the blocks after the shared prefix are hashed.
    """

    def __init__(self, entries: int = 16, min_blocks: int = 8) -> None:
        self.entries = entries
        self.min_blocks = min_blocks
        self._recent: OrderedDict[tuple[str, int, bytes], tuple[bytes, list[int]]] = OrderedDict()
        self.reused_blocks = 0
        self.hashed_blocks = 0

    def __call__(self, model: str, prompt: bytes, block_tokens: int, max_blocks: int) -> list[int]:
        step = block_tokens * BYTES_PER_TOKEN
        limit = min(len(prompt), step * max_blocks)
        full = limit // step
        if full < self.min_blocks:
            out = block_hashes(model, prompt, block_tokens, max_blocks)
            self.hashed_blocks += len(out)
            return out
        key = (model, block_tokens, prompt[:step])
        recent = self._recent
        seen = recent.get(key)
        shared = 0
        if seen is not None:
            shared = _shared_blocks(prompt, seen[0], min(full, len(seen[0]) // step, len(seen[1])), step)
        if shared:
            out = _chain(seen[1][shared - 1], prompt, shared * step, limit, step, seen[1][:shared])
        else:
            out = block_hashes(model, prompt, block_tokens, max_blocks)
        self.reused_blocks += shared
        self.hashed_blocks += len(out) - shared
        recent[key] = (prompt, out)
        recent.move_to_end(key)
        if len(recent) > self.entries:
            recent.popitem(last=False)
        return out


def _shared_blocks(prompt: bytes, other: bytes, most: int, step: int) -> int:
    """How many whole leading blocks (at most `most`) the two byte strings share."""
    view = memoryview(other)
    if prompt.startswith(view[: most * step]):
        return most
    lo, hi = 1, most   # block 1 is shared (same key); block `most` is not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if prompt.startswith(view[: mid * step]):
            lo = mid
        else:
            hi = mid
    return lo


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

    def record(self, pod: str, hashes: list[int], capacity: int | None = None, held: int = 0) -> None:
        """The pod was picked for this chain. `held`: leading blocks it was matched with (it
        holds them: they are only refreshed, in one C-level pass)."""
        cap = capacity if capacity and capacity > 0 else self.default_capacity
        lru = self._lru.get(pod)
        if lru is None:
            lru = self._lru[pod] = OrderedDict()
        index = self._pods_by_hash
        # Last block first: earlier blocks end up more recent.
        for h in reversed(hashes[held:] if held else hashes):
            if h in lru:
                lru.move_to_end(h)
                continue
            lru[h] = None
            pods = index.get(h)
            if pods is None:
                index[h] = {pod}
            else:
                pods.add(pod)
        if held:
            try:
                deque(map(lru.move_to_end, reversed(hashes[:held])), maxlen=0)
            except KeyError:   # `held` overstated what the pod holds: record those blocks one by one
                self.record(pod, hashes[:held], cap)
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
