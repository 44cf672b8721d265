"""HPACK (RFC 7541) header-block decoding for grpc_h2, built for a peer that repeats itself.

A gateway's ext_proc client sends the same header block on every stream after the first
(Envoy: indexed fields plus `:path` as a Huffman-coded literal that is never indexed). The
`hpack` package decodes it again each time (~50 µs of pure-Python Huffman per stream). Here:
  * a block that left the dynamic table untouched is remembered with the table's version; the
    same bytes against the same table decode to the same headers, so a repeat is one dict hit;
  * decoded Huffman strings are remembered too, for blocks that do change the table.
The static table and the Huffman decoder itself come from `hpack`.
"""

from __future__ import annotations

from collections import deque

from hpack.exceptions import HPACKDecodingError
from hpack.huffman_table import decode_huffman
from hpack.table import HeaderTable

STATIC = HeaderTable.STATIC_TABLE  # 61 (name, value) pairs, 1-based in the RFC
ENTRY_OVERHEAD = 32
DEFAULT_TABLE_SIZE = 4096
MAX_HEADER_LIST = 64 * 1024
_HUFFMAN_CACHE_LIMIT = 512
_BLOCK_CACHE_LIMIT = 64


class HeaderDecoder:
    """Decodes header blocks of one connection (the dynamic table is per connection)."""

    def __init__(self, max_table_size: int = DEFAULT_TABLE_SIZE) -> None:
        self.max_table_size = max_table_size  # what we advertised (SETTINGS_HEADER_TABLE_SIZE)
        self.table_size_limit = max_table_size  # current limit, lowered by size updates
        self.dynamic: deque[tuple[bytes, bytes]] = deque()
        self.size = 0
        self._huffman: dict[bytes, bytes] = {}
        self.version = 0  # bumped on every dynamic table change
        self._blocks: dict[bytes, tuple[int, list[tuple[bytes, bytes]]]] = {}

    def decode(self, block: bytes) -> list[tuple[bytes, bytes]]:
        """The block's (name, value) pairs. The list may be shared with later calls: read only."""
        hit = self._blocks.get(block)
        if hit is not None and hit[0] == self.version:
            return hit[1]
        version = self.version
        headers = self._decode(block)
        if self.version == version:
            if len(self._blocks) >= _BLOCK_CACHE_LIMIT:
                self._blocks.clear()
            self._blocks[bytes(block)] = (version, headers)
        return headers

    def _decode(self, block: bytes) -> list[tuple[bytes, bytes]]:
        headers: list[tuple[bytes, bytes]] = []
        pos, n = 0, len(block)
        total = 0
        while pos < n:
            b = block[pos]
            if b & 0x80:  # indexed field
                index, pos = self._int(block, pos, 7)
                header = self._entry(index)
            elif b & 0x40:  # literal with incremental indexing
                header, pos = self._literal(block, pos, 6)
                self._add(header)
            elif b & 0x20:  # dynamic table size update
                if headers:
                    raise HPACKDecodingError("table size update after a header field")
                size, pos = self._int(block, pos, 5)
                if size > self.max_table_size:
                    raise HPACKDecodingError(f"table size {size} above the advertised {self.max_table_size}")
                self.table_size_limit = size
                self.version += 1
                self._evict()
                continue
            else:  # literal without indexing / never indexed: the table is untouched
                header, pos = self._literal(block, pos, 4)
            total += len(header[0]) + len(header[1]) + ENTRY_OVERHEAD
            if total > MAX_HEADER_LIST:
                raise HPACKDecodingError("header list too large")
            headers.append(header)
        return headers

    @staticmethod
    def _int(block: bytes, pos: int, prefix_bits: int) -> tuple[int, int]:
        mask = (1 << prefix_bits) - 1
        value = block[pos] & mask
        pos += 1
        if value < mask:
            return value, pos
        shift = 0
        while True:
            if pos >= len(block):
                raise HPACKDecodingError("truncated integer")
            b = block[pos]
            pos += 1
            value += (b & 0x7F) << shift
            if not b & 0x80:
                return value, pos
            shift += 7
            if shift > 28:
                raise HPACKDecodingError("integer too large")

    def _string(self, block: bytes, pos: int) -> tuple[bytes, int]:
        if pos >= len(block):
            raise HPACKDecodingError("truncated string")
        huffman = block[pos] & 0x80
        length, pos = self._int(block, pos, 7)
        end = pos + length
        if end > len(block):
            raise HPACKDecodingError("truncated string")
        raw = bytes(block[pos:end])
        if not huffman:
            return raw, end
        value = self._huffman.get(raw)
        if value is None:
            value = decode_huffman(raw)
            if len(self._huffman) >= _HUFFMAN_CACHE_LIMIT:
                self._huffman.clear()
            self._huffman[raw] = value
        return value, end

    def _literal(self, block: bytes, pos: int, prefix_bits: int) -> tuple[tuple[bytes, bytes], int]:
        index, pos = self._int(block, pos, prefix_bits)
        if index:
            name = self._entry(index)[0]
        else:
            name, pos = self._string(block, pos)
        value, pos = self._string(block, pos)
        return (name, value), pos

    def _entry(self, index: int) -> tuple[bytes, bytes]:
        if 0 < index <= len(STATIC):
            return STATIC[index - 1]
        i = index - len(STATIC) - 1
        if 0 <= i < len(self.dynamic):
            return self.dynamic[i]
        raise HPACKDecodingError(f"header index {index} out of range")

    def _add(self, header: tuple[bytes, bytes]) -> None:
        self.version += 1
        size = len(header[0]) + len(header[1]) + ENTRY_OVERHEAD
        if size > self.table_size_limit:  # RFC 7541 §4.4: an oversized entry empties the table
            self.dynamic.clear()
            self.size = 0
            return
        self.dynamic.appendleft(header)
        self.size += size
        self._evict()

    def _evict(self) -> None:
        while self.size > self.table_size_limit:
            name, value = self.dynamic.pop()
            self.size -= len(name) + len(value) + ENTRY_OVERHEAD
