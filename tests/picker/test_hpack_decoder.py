"""HeaderDecoder (grpc_h2's HPACK decoder) against the `hpack` package: the same blocks must
decode to the same header lists with the same dynamic-table state, and malformed blocks must fail
with HPACKDecodingError (grpc_h2 turns that into a COMPRESSION_ERROR GOAWAY)."""

from __future__ import annotations

import random

import pytest
from hpack import Decoder, Encoder
from hpack.exceptions import HPACKDecodingError
from hpack.struct import HeaderTuple, NeverIndexedHeaderTuple

from endpoint_picker.hpack_decoder import HeaderDecoder

STATIC_NAMES = [b":path", b":method", b":authority", b":scheme", b"content-type", b"user-agent", b"accept-encoding"]


def random_headers(rng: random.Random, pool: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """A mix of repeats (indexed from the dynamic table), static names with new values, fresh
    names, values with arbitrary bytes, never-indexed fields, and now and then a big entry."""
    out: list = []
    for _ in range(rng.randint(0, 12)):
        r = rng.random()
        if r < 0.35 and pool:
            h = rng.choice(pool)
        elif r < 0.6:
            h = (rng.choice(STATIC_NAMES), bytes(rng.randrange(32, 127) for _ in range(rng.randint(0, 40))))
        elif r < 0.97:
            name = bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz-_0123456789") for _ in range(rng.randint(1, 20)))
            h = (name, bytes(rng.randrange(256) for _ in range(rng.randint(0, 60))))
        else:  # bigger than a whole 4096-byte table: adding it empties the table (RFC 7541 §4.4)
            h = (b"x-big", bytes(rng.randrange(256) for _ in range(rng.randint(4070, 4300))))
        if rng.random() < 0.1:
            h = NeverIndexedHeaderTuple(*h)
        elif len(pool) < 40:
            pool.append(tuple(h))
        out.append(h)
    return out


def _tuple(h) -> HeaderTuple:
    return h if isinstance(h, HeaderTuple) else HeaderTuple(*h)


def assert_same_table(ours: HeaderDecoder, theirs: Decoder) -> None:
    assert list(ours.dynamic) == list(theirs.header_table.dynamic_entries)
    assert ours.size == theirs.header_table._current_size
    assert ours.table_size_limit == theirs.header_table.maxsize


@pytest.mark.parametrize("huffman", [True, False], ids=["huffman", "plain"])
@pytest.mark.parametrize("seed", range(4))
def test_hpack_decoder_matches_hpack_package_on_random_blocks(seed: int, huffman: bool):
    rng = random.Random(seed)
    enc, ref, ours = Encoder(), Decoder(), HeaderDecoder()
    pool: list[tuple[bytes, bytes]] = []
    sizes_seen = set()
    emptied = 0  # blocks adding an entry bigger than any table to a non-empty table
    for i in range(150):
        if rng.random() < 0.15:  # table size updates, including 0 and several in one block
            for _ in range(rng.randint(1, 2)):
                # Always a change: hpack's Encoder drops a pending update when a size is set to
                # the value it already has (its `resized` flag is overwritten with False).
                size = rng.choice([s for s in (0, 0, 100, 256, 1000, 4096) if s != enc.header_table_size])
                enc.header_table_size = size
                sizes_seen.add(size)
        headers = random_headers(rng, pool)
        if ours.size and any(h.indexable and len(h[1]) > 4000 for h in map(_tuple, headers)):
            emptied += 1
        block = enc.encode(headers, huffman=huffman)
        expected = ref.decode(block, raw=True)
        got = ours.decode(block)
        assert got == [(bytes(n), bytes(v)) for n, v in expected], f"block {i}"
        assert got == [(bytes(h[0]), bytes(h[1])) for h in headers]
        assert_same_table(ours, ref)
    assert 0 in sizes_seen and 4096 in sizes_seen and emptied


def test_hpack_decoder_literal_without_indexing_and_indexed_names_from_both_tables():
    """Forms the `hpack` Encoder never emits: literal without indexing (0x00) with an indexed
    name from the static and the dynamic table, and a size update that evicts exactly one entry."""
    d = HeaderDecoder()
    # literal with incremental indexing, new name "a" = "1" (size 34), then "b" = "2"
    assert d.decode(b"\x40\x01a\x011" + b"\x40\x01b\x012") == [(b"a", b"1"), (b"b", b"2")]
    assert list(d.dynamic) == [(b"b", b"2"), (b"a", b"1")] and d.size == 68
    # 0x04: literal without indexing, name = static index 4 (:path); 0x0f 0x0b: name = index 62 ("b")
    assert d.decode(b"\x04\x02/x" + b"\x0f\x2f\x01z" + b"\xbf") == [(b":path", b"/x"), (b"b", b"z"), (b"a", b"1")]
    assert d.size == 68  # literals without indexing leave the table alone
    assert d.decode(b"\x3f\x03" + b"\xbe") == [(b"b", b"2")]  # size 34: "a" (the oldest) is evicted
    assert list(d.dynamic) == [(b"b", b"2")] and d.table_size_limit == 34
    with pytest.raises(HPACKDecodingError):
        d.decode(b"\xbf")  # index 63 is gone


def test_hpack_decoder_huffman_cache_returns_identical_results_for_a_repeated_block():
    enc = Encoder()
    headers = [(b":method", b"POST"), (b":path", b"/envoy.service.ext_proc.v3.ExternalProcessor/Process"),
               NeverIndexedHeaderTuple(b"authorization", b"Bearer abc"), (b"x-note", b"\xff\x00 binary")]
    first_block = enc.encode(headers, huffman=True)
    repeat_block = enc.encode(headers, huffman=True)  # everything indexed now except the never-indexed pair
    assert repeat_block != first_block
    d = HeaderDecoder()
    first = d.decode(first_block)
    cached = dict(d._huffman)
    assert (b"Bearer abc") in cached.values()
    repeats = [d.decode(repeat_block) for _ in range(3)]
    assert all(r == first for r in repeats)
    assert first == [(bytes(n), bytes(v)) for n, v, *_ in headers]
    assert d._huffman == cached  # nothing new was decoded: the repeats came from the cache
    # A fresh decoder (no cache) agrees with the cached answers.
    fresh = HeaderDecoder()
    fresh.decode(first_block)
    assert fresh.decode(repeat_block) == repeats[0]


def test_hpack_decoder_huffman_cache_is_bounded():
    from endpoint_picker import hpack_decoder

    enc, d = Encoder(), HeaderDecoder()
    for i in range(hpack_decoder._HUFFMAN_CACHE_LIMIT + 10):
        value = b"value-%d" % i
        assert d.decode(enc.encode([NeverIndexedHeaderTuple(b"x-k", value)], huffman=True)) == [(b"x-k", value)]
    assert len(d._huffman) <= hpack_decoder._HUFFMAN_CACHE_LIMIT


@pytest.mark.parametrize(
    "block,message",
    [
        pytest.param(b"\x80", "index 0", id="indexed-0"),
        pytest.param(b"\xbe", "index 62", id="index-past-static-empty-dynamic"),
        pytest.param(b"\x7e\x01x", "index 62", id="literal-name-index-out-of-range"),
        pytest.param(b"\x3f\xe2\x1f", "above the advertised", id="size-update-above-max"),
        pytest.param(b"\x82\x20", "after a header field", id="size-update-after-field"),
        pytest.param(b"\xff", "truncated integer", id="truncated-integer"),
        pytest.param(b"\xff\x80\x80", "truncated integer", id="truncated-integer-continuation"),
        pytest.param(b"\x00\x05ab", "truncated string", id="truncated-name"),
        pytest.param(b"\x00\x01a\x05abc", "truncated string", id="truncated-value"),
        pytest.param(b"\x00\x01a", "truncated string", id="value-missing"),
        pytest.param(b"\x04", "truncated string", id="value-missing-after-indexed-name"),
        pytest.param(b"\x40", "truncated string", id="name-missing"),
        pytest.param(b"\x00\x81\x00\x00", "Huffman", id="bad-huffman-padding"),
    ],
)
def test_hpack_decoder_rejects_malformed_blocks(block: bytes, message: str):
    with pytest.raises(HPACKDecodingError, match=message):
        HeaderDecoder().decode(block)


def test_hpack_decoder_size_update_limit_follows_constructor_and_can_go_back_up():
    d = HeaderDecoder(max_table_size=100)
    with pytest.raises(HPACKDecodingError, match="above the advertised"):
        d.decode(b"\x3f\x46")  # 31 + 70 = 101
    d = HeaderDecoder(max_table_size=100)
    assert d.decode(b"\x20\x3f\x45") == []  # 0 then 100: both allowed at the start of a block
    assert d.table_size_limit == 100


def test_hpack_decoder_rejects_oversized_header_list():
    big = b"v" * 70_000
    block = Encoder().encode([NeverIndexedHeaderTuple(b"x-big", big)], huffman=False)
    with pytest.raises(HPACKDecodingError, match="too large"):
        HeaderDecoder().decode(block)


def test_repeated_block_is_served_from_cache_only_while_the_table_is_unchanged():
    from hpack import Encoder

    from endpoint_picker.hpack_decoder import HeaderDecoder

    enc, dec = Encoder(), HeaderDecoder()
    dec.decode(enc.encode([("a", "1")]))           # literal with indexing: ("a", "1") is entry 62
    ref = enc.encode([("a", "1")])                 # now just the index 62
    first = dec.decode(ref)
    assert first == [(b"a", b"1")] and dec.decode(ref) is first  # same bytes, same table: cached
    dec.decode(enc.encode([("b", "2")]))           # a new entry shifts ("a", "1") to 63
    assert dec.decode(ref) == [(b"b", b"2")]       # index 62 means something else now
