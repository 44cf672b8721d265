"""Zero-work model-server stand-ins for the overhead benchmark: one asyncio process, many ports.

    python -m benchmarks.backends --listen 127.0.3.1:20001,127.0.3.2:20001,...

Every port answers any POST with a tiny OpenAI-style JSON completion (after reading the whole
body, content-length or chunked) and GET /metrics with a static vLLM exposition (idle pod:
0 waiting, 0 running, kv 0, cache_config_info), so the picker's scraper has real work per
scrape. Prints "ready" once every port listens.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

METRICS = (
    "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.\n"
    "# TYPE vllm:num_requests_waiting gauge\n"
    'vllm:num_requests_waiting{engine="0",model_name="m"} 0.0\n'
    "# HELP vllm:num_requests_running Number of requests in model execution batches.\n"
    "# TYPE vllm:num_requests_running gauge\n"
    'vllm:num_requests_running{engine="0",model_name="m"} 0.0\n'
    "# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.\n"
    "# TYPE vllm:kv_cache_usage_perc gauge\n"
    'vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.0\n'
    "# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig\n"
    "# TYPE vllm:cache_config_info gauge\n"
    'vllm:cache_config_info{block_size="16",cache_dtype="auto",enable_prefix_caching="True",num_gpu_blocks="28000"} 1.0\n'
).encode()


def _resp(body: bytes, ctype: bytes = b"application/json") -> bytes:
    return (b"HTTP/1.1 200 OK\r\ncontent-type: " + ctype + b"\r\ncontent-length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body)


METRICS_RESP = _resp(METRICS, b"text/plain; version=0.0.4")


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, reply: bytes) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lower = head.lower()
            i = lower.find(b"content-length:")
            if i >= 0:
                n = int(lower[i + 15:lower.index(b"\r\n", i)])
                if n:
                    await reader.readexactly(n)
            elif b"transfer-encoding: chunked" in lower:
                while True:
                    size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                    await reader.readexactly(size + 2)
                    if size == 0:
                        break
            if head.startswith(b"GET /metrics"):
                writer.write(METRICS_RESP)
            else:
                writer.write(reply)
    except (asyncio.IncompleteReadError, ConnectionError, ValueError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


async def serve(addresses: list[str]) -> None:
    servers = []
    for a in addresses:
        host, _, port = a.rpartition(":")
        p = int(port)
        body = (b'{"id":"cmpl-0","object":"text_completion","model":"m","choices":[{"index":0,"text":"ok",'
                b'"finish_reason":"length"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}')
        reply = _resp(body)[:-len(body)]
        reply = reply.replace(b"\r\n\r\n", f"\r\nx-inference-pod: zero-{host}\r\n\r\n".encode()) + body

        async def h(r, w, reply=reply):
            await _handle(r, w, reply)

        servers.append(await asyncio.start_server(h, host, p, limit=1 << 20, backlog=1024))
    print("ready", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop.set)
    await stop.wait()
    for s in servers:
        s.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True, help="comma-separated host:port list")
    a = ap.parse_args()
    asyncio.run(serve(a.listen.split(",")))


if __name__ == "__main__":
    main()
