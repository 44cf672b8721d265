"""Response-side model name restore: the client sees the model name it asked for.

Works on JSON and SSE bodies by replacing the serialized `"model":"<served>"` pair (OpenAI) or
`"model_name":"<served>"` (KServe v2), so no response is parsed. Bytes after the last newline
are held back so a pair split across chunks is still found (SSE events end in newlines; a plain
JSON body is small and flushed at the end).
"""

from __future__ import annotations

import orjson


class ModelRestorer:
    def __init__(self, served: str, client: str) -> None:
        s, c = orjson.dumps(served), orjson.dumps(client)
        self.pairs = [(key + sep + s, key + sep + c) for key in (b'"model":', b'"model_name":') for sep in (b"", b" ")]
        self._carry = b""

    def _replace(self, data: bytes) -> bytes:
        for old, new in self.pairs:
            if old in data:
                data = data.replace(old, new)
        return data

    def feed(self, chunk: bytes, end_of_stream: bool) -> bytes:
        data = self._carry + chunk if self._carry else chunk
        if end_of_stream:
            self._carry = b""
            return self._replace(data)
        cut = data.rfind(b"\n") + 1
        self._carry = data[cut:]
        return self._replace(data[:cut])

    def flush_each(self, chunk: bytes) -> bytes:
        """For STREAMED mode, where each chunk must be answered by itself (no hold-back)."""
        return self._replace(chunk)
