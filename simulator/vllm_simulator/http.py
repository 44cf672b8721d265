"""Minimal HTTP/1.1 server protocol on asyncio (keep-alive, pipelining, chunked).

One request at a time per connection; the next pipelined request is parsed
only after the current response (which may be a long SSE stream) has ended.
"""

from __future__ import annotations

import asyncio

MAX_HEADER = 64 * 1024
MAX_BODY = 256 * 1024 * 1024

REASONS = {
    100: "Continue", 200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
    413: "Payload Too Large", 422: "Unprocessable Entity", 429: "Too Many Requests",
    431: "Request Header Fields Too Large", 500: "Internal Server Error", 501: "Not Implemented",
    503: "Service Unavailable",
}


class HTTPRequest:
    __slots__ = ("method", "target", "path", "query", "version", "headers", "body", "keep_alive")

    def __init__(self, method, target, version, headers, body, keep_alive):
        self.method = method
        self.target = target
        p, _, q = target.partition("?")
        self.path = p
        self.query = q
        self.version = version
        self.headers = headers
        self.body = body
        self.keep_alive = keep_alive


class _BadRequest(Exception):
    def __init__(self, status, msg):
        super().__init__(msg)
        self.status = status


class HTTPConnection(asyncio.Protocol):
    """Parses requests and hands them to ``server.dispatch(conn, req)``.

    The handler must eventually call :meth:`respond` or :meth:`start_stream` +
    :meth:`end_stream`.  ``on_close`` (if set) is called when the peer goes away
    while a response is in progress.
    """

    __slots__ = ("server", "transport", "buf", "busy", "closed", "on_close", "req", "_stream_chunked",
                 "_sent100", "_idle")

    def __init__(self, server):
        self.server = server
        self.transport = None
        self.buf = bytearray()
        self.busy = False
        self.closed = False
        self.on_close = None
        self.req: HTTPRequest | None = None
        self._stream_chunked = True
        self._sent100 = False
        self._idle = None

    # asyncio callbacks -----------------------------------------------------
    def connection_made(self, transport):
        self.transport = transport
        self.server.conns.add(self)
        self._arm_idle()

    def _arm_idle(self):
        """uvicorn (vLLM's server) closes keep-alive connections idle for 5 s; opt-in here."""
        t = self.server.keep_alive_timeout
        if t > 0:
            self._idle = asyncio.get_running_loop().call_later(t, self._idle_close)

    def _idle_close(self):
        self._idle = None
        if not self.busy and not self.buf and not self.closed:
            self.closed = True
            self.transport.close()

    def connection_lost(self, exc):
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        self.closed = True
        self.server.conns.discard(self)
        cb = self.on_close
        self.on_close = None
        if cb is not None:
            try:
                cb()
            except Exception:
                pass

    def data_received(self, data):
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        self.buf += data
        if not self.busy:
            self._process()

    def eof_received(self):
        return False

    # parsing ---------------------------------------------------------------
    def _process(self):
        while not self.busy and not self.closed and self.buf:
            try:
                req = self._parse()
            except _BadRequest as e:
                self._plain_error(e.status, str(e))
                return
            if req is None:
                return
            self.busy = True
            self.req = req
            try:
                self.server.dispatch(self, req)
            except Exception as e:  # handler bug: answer 500 rather than hang
                if self.busy and not self.closed:
                    self.respond(500, b'{"error":{"message":"%s","type":"InternalServerError",'
                                 b'"param":null,"code":500}}' % repr(e).replace('"', "'").encode(),
                                 b"application/json")

    def _parse(self):
        buf = self.buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > MAX_HEADER:
                raise _BadRequest(431, "header too large")
            return None
        head = bytes(buf[:end]).decode("latin-1")
        lines = head.split("\r\n")
        # tolerate leading empty lines between pipelined requests
        while lines and not lines[0]:
            lines.pop(0)
        if not lines:
            del buf[:end + 4]
            return None
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise _BadRequest(400, "bad request line")
        method, target, version = parts
        headers = {}
        for ln in lines[1:]:
            k, sep, v = ln.partition(":")
            if not sep:
                raise _BadRequest(400, "bad header")
            k = k.strip().lower()
            v = v.strip()
            if k in headers:
                headers[k] += ", " + v
            else:
                headers[k] = v
        pos = end + 4
        te = headers.get("transfer-encoding", "").lower()
        if "chunked" in te:
            body = bytearray()
            while True:
                le = buf.find(b"\r\n", pos)
                if le < 0:
                    return self._need_more(headers)
                size_s = bytes(buf[pos:le]).split(b";")[0].strip()
                try:
                    size = int(size_s, 16)
                except ValueError:
                    raise _BadRequest(400, "bad chunk size")
                if size == 0:
                    # skip trailers until empty line
                    tpos = le + 2
                    while True:
                        te2 = buf.find(b"\r\n", tpos)
                        if te2 < 0:
                            return self._need_more(headers)
                        if te2 == tpos:
                            pos = te2 + 2
                            break
                        tpos = te2 + 2
                    break
                if le + 2 + size + 2 > len(buf):
                    return self._need_more(headers)
                body += buf[le + 2:le + 2 + size]
                if len(body) > MAX_BODY:
                    raise _BadRequest(413, "body too large")
                pos = le + 2 + size + 2
            body = bytes(body)
        else:
            cl = headers.get("content-length")
            if cl:
                try:
                    n = int(cl)
                except ValueError:
                    raise _BadRequest(400, "bad content-length")
                if n > MAX_BODY:
                    raise _BadRequest(413, "body too large")
                if len(buf) - pos < n:
                    return self._need_more(headers)
                body = bytes(buf[pos:pos + n])
                pos += n
            else:
                body = b""
        del buf[:pos]
        self._sent100 = False
        conn_h = headers.get("connection", "").lower()
        if version == "HTTP/1.1":
            keep = "close" not in conn_h
        else:
            keep = "keep-alive" in conn_h
        return HTTPRequest(method, target, version, headers, body, keep)

    def _need_more(self, headers):
        if not self._sent100 and headers.get("expect", "").lower() == "100-continue":
            self._sent100 = True
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        return None

    def _plain_error(self, status, msg):
        if self.transport and not self.closed:
            body = msg.encode()
            self.transport.write(b"HTTP/1.1 %d %s\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n"
                                 b"%sconnection: close\r\n\r\n%s" % (
                                     status, REASONS.get(status, "").encode(), len(body),
                                     self.server.common_headers(None), body))
            self.transport.close()
        self.closed = True

    # responses -------------------------------------------------------------
    def _head(self, status: int, ctype: bytes | None, extra: bytes) -> bytearray:
        h = bytearray(b"HTTP/1.1 %d %s\r\n" % (status, REASONS.get(status, "Unknown").encode()))
        if ctype:
            h += b"content-type: " + ctype + b"\r\n"
        h += self.server.common_headers(self.req)
        h += extra
        return h

    def respond(self, status: int, body: bytes, ctype: bytes | None = b"application/json",
                extra: bytes = b"") -> None:
        if self.closed or not self.busy:
            return
        req = self.req
        keep = req.keep_alive and not self.server.closing
        h = self._head(status, ctype, extra)
        h += b"content-length: %d\r\n" % len(body)
        if not keep:
            h += b"connection: close\r\n"
        h += b"\r\n"
        if req.method != "HEAD":
            h += body
        self.transport.write(h)
        self._finish(keep)

    def start_stream(self, status: int = 200, ctype: bytes = b"text/event-stream; charset=utf-8",
                     extra: bytes = b"") -> None:
        if self.closed:
            return
        h = self._head(status, ctype, extra)
        if self.req.version == "HTTP/1.1":
            self._stream_chunked = True
            h += b"transfer-encoding: chunked\r\n\r\n"
        else:
            self._stream_chunked = False
            h += b"connection: close\r\n\r\n"
        self.transport.write(h)

    def write_chunk(self, data: bytes) -> None:
        if self.closed or not data:
            return
        if self._stream_chunked:
            self.transport.write(b"%x\r\n%s\r\n" % (len(data), data))
        else:
            self.transport.write(data)

    def end_stream(self, data: bytes = b"") -> None:
        if self.closed:
            return
        if self._stream_chunked:
            if data:
                self.transport.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data))
            else:
                self.transport.write(b"0\r\n\r\n")
            self._finish(self.req.keep_alive and not self.server.closing)
        else:
            if data:
                self.transport.write(data)
            self._finish(False)

    def _finish(self, keep: bool) -> None:
        self.busy = False
        self.on_close = None
        self.req = None
        if not keep:
            self.closed = True
            self.transport.close()
            return
        if self.buf:
            asyncio.get_running_loop().call_soon(self._process)
        else:
            self._arm_idle()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
