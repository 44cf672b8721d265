from endpoint_picker.prefix_index import PrefixIndex, block_hashes


def test_block_hashes_are_chained_and_partial_last_block():
    h = block_hashes("m", b"x" * 10, block_tokens=1, max_blocks=100)  # 4-byte blocks: 4+4+2
    assert len(h) == 3
    assert len(set(h)) == 3  # same text, different position -> different hash (chain)
    assert block_hashes("m", b"x" * 8, 1, 100) == h[:2]  # a shared prefix shares hashes
    assert block_hashes("m", b"x" * 100, 1, 5) == block_hashes("m", b"x" * 20, 1, 5)  # capped at max_blocks


def test_match_counts_leading_blocks_per_pod():
    idx = PrefixIndex()
    a = block_hashes("m", b"a" * 40, 1, 100)  # 10 blocks
    idx.record("p1", a[:3])
    idx.record("p2", a[:7])
    assert idx.match(a) == {"p1": 3, "p2": 7}
    assert idx.match(block_hashes("m", b"b" * 40, 1, 100)) == {}


def test_lru_evicts_oldest_blocks():
    idx = PrefixIndex()
    a = block_hashes("m", b"a" * 16, 1, 100)  # 4 blocks
    b = block_hashes("m", b"b" * 16, 1, 100)
    idx.record("p", a, capacity=4)
    idx.record("p", b, capacity=4)  # evicts all of a
    assert idx.size("p") == 4
    assert idx.match(a) == {}
    assert idx.match(b) == {"p": 4}


def test_remove_pod():
    idx = PrefixIndex()
    a = block_hashes("m", b"a" * 16, 1, 100)
    idx.record("p", a)
    idx.remove_pod("p")
    assert idx.match(a) == {}
    assert idx.pods() == []


def test_block_hashes_chain_each_block_on_the_previous_hash_seeded_with_the_model():
    import xxhash

    h = block_hashes("m", b"abcdefghij", block_tokens=1, max_blocks=100)  # abcd | efgh | ij
    h0 = xxhash.xxh64_intdigest(b"m")
    h1 = xxhash.xxh64_intdigest(b"abcd", h0)
    h2 = xxhash.xxh64_intdigest(b"efgh", h1)
    assert h == [h1, h2, xxhash.xxh64_intdigest(b"ij", h2)]
    assert block_hashes("other", b"abcdefghij", 1, 100)[0] != h[0]  # the model seeds the chain


def _greedy_walk(idx: PrefixIndex, hashes: list[int]) -> dict[str, int]:
    """The reference definition: per pod, consecutive leading blocks it holds."""
    out = {}
    for pod in idx.pods():
        n = 0
        while n < len(hashes) and pod in idx._pods_by_hash.get(hashes[n], ()):
            n += 1
        if n:
            out[pod] = n
    return out


def test_bisection_match_equals_greedy_walk_under_lru_eviction():
    import random

    rng = random.Random(7)
    # Prompts sharing prefixes of different lengths, recorded on pods with small LRUs so chains
    # are constantly evicted: the bisection must agree with walking every block.
    stems = [bytes(rng.randrange(256) for _ in range(64)) for _ in range(4)]
    idx = PrefixIndex()
    for _ in range(600):
        prompt = rng.choice(stems)[: rng.randrange(4, 65)] + bytes(rng.randrange(256) for _ in range(rng.randrange(0, 24)))
        hashes = block_hashes("m", prompt, 1, 100)
        assert idx.match(hashes) == _greedy_walk(idx, hashes)
        idx.record(f"p{rng.randrange(5)}", hashes, capacity=rng.choice([8, 20, 50]))
