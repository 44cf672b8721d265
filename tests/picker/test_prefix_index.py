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
