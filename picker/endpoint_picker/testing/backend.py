"""Fake vLLM-style model servers on loopback: controllable /metrics, echo responses, SSE.

Every response carries `x-inference-pod: <name>`; POST bodies are echoed back as a summary
(size, sha256, content-length seen, model) so tests can check what the server received.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from dataclasses import dataclass, field

import orjson


@dataclass
class BackendState:
    name: str
    waiting: float = 0
    running: float = 0
    kv: float = 0.0
    running_loras: list[str] = field(default_factory=list)
    waiting_loras: list[str] = field(default_factory=list)
    max_lora: int = 0
    block_size: int = 16
    num_gpu_blocks: int = 1000
    # "ok" | "404" (no engine metrics) | "hang" (never answers: metrics go stale)
    metrics_mode: str = "ok"
    requests: list[dict] = field(default_factory=list)
    keep_requests: bool = True
    # Pause between the pieces of an SSE response (a long-running generation).
    stream_delay_s: float = 0.005

    def metrics_text(self) -> bytes:
        lora = ""
        if self.max_lora:
            lora = (f'vllm:lora_requests_info{{max_lora="{self.max_lora}",running_lora_adapters="{",".join(self.running_loras)}",'
                    f'waiting_lora_adapters="{",".join(self.waiting_loras)}"}} 1.7e+09\n')
        return (
            "# HELP vllm:num_requests_waiting Number of requests waiting.\n# TYPE vllm:num_requests_waiting gauge\n"
            f'vllm:num_requests_waiting{{model_name="m"}} {self.waiting}\n'
            f'vllm:num_requests_running{{model_name="m"}} {self.running}\n'
            f'vllm:kv_cache_usage_perc{{model_name="m"}} {self.kv}\n'
            f'vllm:cache_config_info{{block_size="{self.block_size}",num_gpu_blocks="{self.num_gpu_blocks}"}} 1.0\n'
            + lora
        ).encode()


def _response(status: str, headers: dict[str, str], body: bytes) -> bytes:
    h = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return f"HTTP/1.1 {status}\r\n{h}content-length: {len(body)}\r\n\r\n".encode() + body


class FakeBackend:
    def __init__(self, state: BackendState, host: str, port: int) -> None:
        self.state, self.host, self.port = state, host, port
        self.server: asyncio.base_events.Server | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, self.host, self.port, limit=1 << 24)

    async def _read_body(self, reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
        if "content-length" in headers:
            return await reader.readexactly(int(headers["content-length"]))
        if headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")
                    return b"".join(parts)
                parts.append((await reader.readexactly(size + 2))[:-2])
        return b""

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        st = self.state
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
                method, path, _ = head[0].split(" ", 2)
                headers = {}
                for line in head[1:]:
                    if line:
                        k, _, v = line.partition(":")
                        headers[k.strip().lower()] = v.strip()
                body = await self._read_body(reader, headers)
                if path.startswith("/metrics"):
                    if st.metrics_mode == "hang":
                        await asyncio.sleep(3600)
                    if st.metrics_mode == "404":
                        writer.write(_response("404 Not Found", {}, b"no metrics\n"))
                    else:
                        writer.write(_response("200 OK", {"content-type": "text/plain"}, st.metrics_text()))
                    await writer.drain()
                    continue
                await self._serve(writer, method, path, headers, body)
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    async def _serve(self, writer: asyncio.StreamWriter, method: str, path: str, headers: dict[str, str], body: bytes) -> None:
        st = self.state
        model = None
        stream = False
        if body[:1] == b"{":
            try:
                doc = orjson.loads(body)
                model = doc.get("model") or doc.get("model_id")
                stream = doc.get("stream") is True
            except orjson.JSONDecodeError:
                pass
        info = {"pod": st.name, "method": method, "path": path, "received_bytes": len(body),
                "sha256": hashlib.sha256(body).hexdigest(), "content_length": headers.get("content-length"),
                "received_model": model, "headers": {k: v for k, v in headers.items() if k.startswith("x-")}}
        if st.keep_requests:
            st.requests.append(info)
        if stream:
            events = [orjson.dumps({"id": "c1", "object": "chat.completion.chunk", "model": model,
                                    "choices": [{"index": 0, "delta": {"content": f"tok{i}"}}]}) for i in range(3)]
            payload = b"".join(b"data: " + e + b"\n\n" for e in events) + b"data: [DONE]\n\n"
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nx-inference-pod: " + st.name.encode()
                         + b"\r\ntransfer-encoding: chunked\r\n\r\n")
            for piece in (payload[:40], payload[40:77], payload[77:]):  # split mid-event on purpose
                writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                await writer.drain()
                await asyncio.sleep(st.stream_delay_s)
            writer.write(b"0\r\n\r\n")
        elif path.startswith("/v2/models/"):  # KServe v2 inference response: the model is named in the path
            out = orjson.dumps({"model_name": path.split("/")[3], "model_version": "1", "outputs": [], "served_by": info})
            writer.write(_response("200 OK", {"content-type": "application/json", "x-inference-pod": st.name}, out))
        else:
            out = orjson.dumps({"object": "text_completion", "model": model, "served_by": info})
            writer.write(_response("200 OK", {"content-type": "application/json", "x-inference-pod": st.name}, out))
        await writer.drain()


class BackendFleet:
    """Runs FakeBackends on a private event loop thread (so sync tests can drive them)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="fake-backends")
        self.thread.start()
        self.backends: list[FakeBackend] = []

    def add(self, name: str, host: str, port: int, **state) -> FakeBackend:
        b = FakeBackend(BackendState(name=name, **state), host, port)
        asyncio.run_coroutine_threadsafe(b.start(), self.loop).result(5)
        self.backends.append(b)
        return b

    def close(self) -> None:
        async def _close() -> None:
            for b in self.backends:
                if b.server is not None:
                    b.server.close()
            me = asyncio.current_task()
            pending = [t for t in asyncio.all_tasks() if t is not me]
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(_close(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
