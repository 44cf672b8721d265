"""The simulated KV cache of one replica: block accounting, the hash-addressed prefix cache and
its LRU eviction (the scheduler, scheduler.py, allocates from it; metrics read its usage)."""

from __future__ import annotations

from collections import OrderedDict

CLEAN_KEY0 = 1 << 64
"""Keys of clean free blocks start here: above every ``hash()`` value, so never a block's hash."""


class KVCache:
    """Block accounting with a hash-addressed prefix cache and LRU eviction.

    ``used`` counts physical blocks referenced by requests.  A prompt block whose
    tokens are computed is registered under its chained hash (``refs``: hash -> references);
    when its last reference goes it joins ``free`` under that hash (free but still holding
    content, evictable) and is reused on a hit or evicted when a clean block is needed.
    Usage = used / total, as vLLM reports it (cached-but-free blocks count free).

    ``free`` holds *every* free block from the start, in the order they are taken: clean ones
    first (under placeholder keys from CLEAN_KEY0 up), then cached ones, least recently freed
    first.  Its size is ``total - used`` whatever the prefix cache holds, so the bookkeeping is
    allocated once, at startup, like vLLM's BlockPool (its KVCacheBlocks and free-block queue
    exist before the first request); a cache filling up under traffic does not grow the heap.
    CPython rebuilds a dict's table once insertions (deleted entries included) have used up its
    spare room, sized for 3x the live entries: for 28,224 blocks that is 2**17 slots, one doubling
    past the table that inserting them builds. :meth:`_settle` turns every entry over once at
    startup, so that doubling happens now and not under traffic; later rebuilds keep the size.
    """

    def __init__(self, num_blocks: int, enable_prefix_caching: bool = True):
        self.total = num_blocks
        self.used = 0
        self.refs: dict[int, int] = {}
        self.free: OrderedDict[int, None] = OrderedDict()
        self.cached_free = 0        # free blocks still holding content (evictable), at the end of `free`
        self.enable = enable_prefix_caching
        self.evictions = 0
        self._next_clean = CLEAN_KEY0
        self._add_clean(num_blocks)
        self._settle()

    def _add_clean(self, n: int) -> None:
        """n clean blocks at the head of `free` (taken before any cached block is evicted)."""
        free, k = self.free, self._next_clean
        for key in range(k, k + n):
            free[key] = None
            free.move_to_end(key, last=False)
        self._next_clean = k + n

    def _settle(self) -> None:
        free, k = self.free, self._next_clean
        for key in range(k, k + len(free)):
            free.popitem(last=False)
            free[key] = None
        self._next_clean = k + len(free)

    def available(self) -> int:
        return self.total - self.used

    def usage(self) -> float:
        return self.used / self.total if self.total else 0.0

    def match(self, hashes: list[int], max_blocks: int) -> tuple[int, int]:
        """Consecutive leading hits (blocks) and how many of them are evictable."""
        if not self.enable:
            return 0, 0
        refs, free = self.refs, self.free
        n = ne = 0
        for h in hashes:
            if n >= max_blocks:
                break
            if h in refs:
                n += 1
            elif h in free:
                n += 1
                ne += 1
            else:
                break
        return n, ne

    def acquire(self, hashes) -> None:
        refs, free = self.refs, self.free
        for h in hashes:
            r = refs.get(h)
            if r:
                refs[h] = r + 1
            else:
                del free[h]
                self.cached_free -= 1
                refs[h] = 1
                self.used += 1

    def alloc(self, n: int) -> None:
        """Take n free blocks: clean ones first, then the least recently freed cached ones."""
        if n <= 0:
            return
        pop = self.free.popitem
        for _ in range(n):
            key, _ = pop(last=False)
            if key < CLEAN_KEY0:
                self.cached_free -= 1
                self.evictions += 1
        self.used += n

    def register(self, h: int) -> bool:
        if h in self.refs or h in self.free:
            return False
        self.refs[h] = 1
        return True

    def release(self, held: list[int], n_private: int) -> None:
        refs, free = self.refs, self.free
        for h in reversed(held):
            r = refs[h] - 1
            if r:
                refs[h] = r
            else:
                del refs[h]
                free[h] = None
                self.cached_free += 1
                self.used -= 1
        self._add_clean(n_private)
        self.used -= n_private

    def reset_prefix_cache(self) -> None:
        """Forget every cached free block (they become clean)."""
        free = self.free
        for h in [k for k in free if k < CLEAN_KEY0]:
            del free[h]
        self._add_clean(self.cached_free)
        self.cached_free = 0
