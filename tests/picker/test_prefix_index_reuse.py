"""BlockHasher and record(held=...): the hot-path shortcuts give exactly the plain results."""

from __future__ import annotations

import random

from endpoint_picker.prefix_index import BlockHasher, PrefixIndex, block_hashes


def _text(rng: random.Random, n: int) -> bytes:
    return bytes(rng.getrandbits(8) for _ in range(n))


def test_reused_hashes_equal_fresh_hashes_for_every_kind_of_overlap():
    rng = random.Random(7)
    hasher = BlockHasher(entries=4, min_blocks=2)
    doc = _text(rng, 40 * 256 + 100)                       # 40 whole blocks of 64 tokens + a partial one
    cases = [
        doc,                                               # first sight: nothing to reuse
        doc,                                               # identical
        doc + _text(rng, 3000),                            # extends the whole prefix
        doc[:17 * 256 + 9] + _text(rng, 5000),             # diverges inside block 17
        doc[:256] + _text(rng, 9000),                      # shares only the key block
        doc[:5000],                                        # shorter than the cached prompt
        _text(rng, 300),                                   # below min_blocks: plain path
    ]
    for prompt in cases:
        for model in ("m", "other"):
            assert hasher(model, prompt, 64, 2048) == block_hashes(model, prompt, 64, 2048)
    assert hasher(("m"), doc + b"x" * 90_000, 64, 30) == block_hashes("m", doc + b"x" * 90_000, 64, 30)  # capped
    assert hasher.reused_blocks > 100 and hasher.hashed_blocks > 0


def test_a_different_model_never_reuses_another_models_chain():
    hasher = BlockHasher(min_blocks=1)
    p = b"y" * 256 * 10
    a = hasher("a", p, 64, 100)
    b = hasher("b", p, 64, 100)
    assert a != b and b == block_hashes("b", p, 64, 100)


def test_the_cache_is_bounded():
    hasher = BlockHasher(entries=3, min_blocks=1)
    for i in range(10):
        hasher("m", bytes([i]) * 2560, 64, 100)
    assert len(hasher._recent) == 3


def _state(idx: PrefixIndex) -> tuple:
    return ({p: list(lru) for p, lru in idx._lru.items()}, {h: sorted(ps) for h, ps in idx._pods_by_hash.items()})


def test_record_with_the_matched_prefix_is_the_plain_record():
    rng = random.Random(3)
    docs = [_text(rng, rng.randrange(2, 30) * 256) for _ in range(6)]
    plain, fast = PrefixIndex(), PrefixIndex()
    for step in range(400):
        base = rng.choice(docs)
        prompt = base[: rng.randrange(1, len(base) + 1)] + _text(rng, rng.randrange(0, 900))
        h = block_hashes("m", prompt, 64, 2048)
        pod = rng.choice("abc")
        held = fast.match(h).get(pod, 0)
        assert held == plain.match(h).get(pod, 0)
        plain.record(pod, h, capacity=40)
        fast.record(pod, h, capacity=40, held=held)
        assert _state(plain) == _state(fast), step


def test_an_overstated_held_count_falls_back_to_the_plain_record():
    plain, fast = PrefixIndex(), PrefixIndex()
    h = block_hashes("m", b"z" * 256 * 6, 64, 100)
    plain.record("p", h)
    fast.record("p", h, held=4)      # the pod held nothing: the fallback inserts the 4 blocks
    assert _state(plain) == _state(fast)


def _model_record(state: dict[str, list[int]], pod: str, hashes: list[int], cap: int) -> None:
    """The specification: an LRU list per pod, chain recorded last block first, oldest evicted."""
    lru = state.setdefault(pod, [])
    for h in reversed(hashes):
        if h in lru:
            lru.remove(h)
        lru.append(h)
    del lru[: max(0, len(lru) - cap)]


def test_record_matches_the_lru_specification_with_bulk_inserts_and_evictions():
    rng = random.Random(11)
    docs = [_text(rng, rng.randrange(1, 40) * 256) for _ in range(8)]
    idx, spec = PrefixIndex(), {}
    for step in range(600):
        base = rng.choice(docs)
        prompt = base[: rng.randrange(1, len(base) + 1)] + (_text(rng, rng.randrange(0, 3000)) if rng.random() < 0.5 else b"")
        h = block_hashes("m", prompt, 64, 2048)
        pod = rng.choice("abcd")
        cap = rng.choice((30, 60, 200))
        idx.record(pod, h, capacity=cap, held=idx.match(h).get(pod, 0))
        _model_record(spec, pod, h, cap)
        assert {p: list(lru) for p, lru in idx._lru.items()} == spec, step
        holders = {}
        for p, lru in spec.items():
            for x in lru:
                holders.setdefault(x, set()).add(p)
        assert idx._pods_by_hash == holders, step
