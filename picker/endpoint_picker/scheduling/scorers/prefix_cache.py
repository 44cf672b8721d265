"""prefix-cache-scorer: prefer endpoints likely to hold the longest prefix of this prompt in KV cache.

score = matched leading blocks / total blocks of the prompt. The chosen endpoint is recorded
after the pick, so the next request sharing the prefix follows it.
"""

from __future__ import annotations

from operator import attrgetter

from pydantic import Field

from ...prefix_index import DEFAULT_LRU_CAPACITY, BlockHasher, PrefixIndex
from ..framework import Candidate, SchedulingRequest
from ..params import Params

TYPE = "prefix-cache-scorer"
_block_size = attrgetter("metrics.block_size")
MIN_BLOCK_TOKENS = 64


class PrefixCacheParams(Params):
    # Pseudo-tokens per block; unset = max(64, the pods' vllm:cache_config_info block_size).
    block_size_tokens: int | None = Field(default=None, gt=0)
    max_prefix_blocks: int = Field(default=2048, gt=0)
    # Blocks remembered per pod; unset = derived from num_gpu_blocks, else 31250.
    lru_capacity_per_server: int | None = Field(default=None, gt=0)


class PrefixCacheScorer:
    TYPE = TYPE
    Params = PrefixCacheParams

    def __init__(self, params: PrefixCacheParams | None = None) -> None:
        self.params = params or PrefixCacheParams()
        self.index = PrefixIndex(self.params.lru_capacity_per_server or DEFAULT_LRU_CAPACITY)
        self.hasher = BlockHasher()

    def _block_tokens(self, candidates: list[Candidate]) -> int:
        if self.params.block_size_tokens is not None:
            return self.params.block_size_tokens
        server = max(map(_block_size, candidates), default=0)
        return max(MIN_BLOCK_TOKENS, server)

    def score(self, request: SchedulingRequest, candidates: list[Candidate]) -> list[float]:
        if not request.prompt:
            return [0.0] * len(candidates)
        block_tokens = self._block_tokens(candidates)
        hashes = self.hasher(request.target_model, request.prompt, block_tokens, self.params.max_prefix_blocks)
        hits = self.index.match(hashes)
        request.state[TYPE] = (hashes, block_tokens, hits)
        if not hits:
            return [0.0] * len(candidates)
        total = len(hashes)
        return [hits.get(c.key, 0) / total for c in candidates]

    def retain(self, keys: set[str]) -> None:
        for pod in self.index.pods():
            if pod not in keys:
                self.index.remove_pod(pod)

    def picked(self, request: SchedulingRequest, chosen: Candidate) -> None:
        st = request.state.get(TYPE)
        if not st:
            return
        hashes, block_tokens, hits = st
        m = chosen.metrics
        cap = self.params.lru_capacity_per_server
        if cap is None and m.num_gpu_blocks:
            # Convert the server's KV blocks into our (larger) pseudo-token blocks.
            cap = max(1, m.num_gpu_blocks * max(m.block_size, 1) // block_tokens)
        self.index.record(chosen.key, hashes, cap, held=hits.get(chosen.key, 0))
