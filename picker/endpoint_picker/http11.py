"""A minimal asyncio HTTP/1.1 client with keep-alive: enough for /metrics scrapes and the
Kubernetes API (JSON requests and line-delimited watch streams). No third-party dependency."""

from __future__ import annotations

import asyncio
import ssl as ssl_mod
from typing import AsyncIterator


class HttpError(Exception):
    pass


class HttpConnection:
    def __init__(self, host: str, port: int, *, ssl: ssl_mod.SSLContext | None = None, timeout: float = 5.0):
        self.host, self.port, self.ssl, self.timeout = host, port, ssl, timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._host_header = f"{host}:{port}"

    async def _connect(self) -> None:
        self._reader, self._writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port, ssl=self.ssl, limit=1 << 22), self.timeout
        )

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    async def _send(self, method: str, path: str, headers: dict[str, str] | None, body: bytes | None) -> None:
        if self._writer is None or self._writer.is_closing():
            await self._connect()
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self._host_header}"]
        for k, v in (headers or {}).items():
            lines.append(f"{k}: {v}")
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")
        assert self._writer is not None
        self._writer.write(data)

    async def _head(self) -> tuple[int, dict[str, str]]:
        assert self._reader is not None
        raw = await self._reader.readuntil(b"\r\n\r\n")
        head = raw.decode("latin-1").split("\r\n")
        parts = head[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise HttpError(f"bad status line {head[0]!r}")
        hdrs: dict[str, str] = {}
        for line in head[1:]:
            if line:
                k, _, v = line.partition(":")
                hdrs[k.strip().lower()] = v.strip()
        return int(parts[1]), hdrs

    async def _chunks(self) -> AsyncIterator[bytes]:
        assert self._reader is not None
        r = self._reader
        while True:
            size_line = await r.readuntil(b"\r\n")
            size = int(size_line.split(b";", 1)[0], 16)
            if size == 0:
                await r.readuntil(b"\r\n")
                return
            data = await r.readexactly(size + 2)
            yield data[:-2]

    async def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """One request on the kept-alive connection; reconnects once if the server closed it."""
        for attempt in (0, 1):
            try:
                await self._send(method, path, headers, body)
                return await asyncio.wait_for(self._read_response(method), self.timeout)
            except (ConnectionError, asyncio.IncompleteReadError) as e:
                self.close()
                if attempt:
                    raise HttpError(str(e) or type(e).__name__) from e
            except BaseException:
                self.close()
                raise
        raise HttpError("unreachable")

    async def _read_response(self, method: str) -> tuple[int, dict[str, str], bytes]:
        status, hdrs = await self._head()
        assert self._reader is not None
        if method == "HEAD" or status in (204, 304):
            body = b""
        elif "content-length" in hdrs:
            body = await self._reader.readexactly(int(hdrs["content-length"]))
        elif hdrs.get("transfer-encoding", "").lower() == "chunked":
            body = b"".join([c async for c in self._chunks()])
        else:
            body = await self._reader.read()
            self.close()
        if hdrs.get("connection", "").lower() == "close":
            self.close()
        return status, hdrs, body

    async def stream_lines(self, path: str, headers: dict[str, str] | None = None) -> AsyncIterator[bytes]:
        """GET a streaming response (e.g. a Kubernetes watch) and yield complete lines."""
        await self._send("GET", path, headers, None)
        status, hdrs = await asyncio.wait_for(self._head(), self.timeout)
        if status != 200:
            body = b""
            if "content-length" in hdrs and self._reader is not None:
                body = await self._reader.readexactly(int(hdrs["content-length"]))
            self.close()
            raise HttpError(f"GET {path}: HTTP {status} {body[:200]!r}")
        buf = b""
        try:
            if hdrs.get("transfer-encoding", "").lower() == "chunked":
                source: AsyncIterator[bytes] = self._chunks()
            else:
                source = self._raw()
            async for chunk in source:
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if line.strip():
                        yield line
            if buf.strip():
                yield buf
        finally:
            self.close()

    async def _raw(self) -> AsyncIterator[bytes]:
        assert self._reader is not None
        while True:
            data = await self._reader.read(65536)
            if not data:
                return
            yield data
