"""``vllm-sim`` command line (accepts vLLM's own serve flags too)."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys

from .config import SimConfig
from .malloc_tuning import pin_mmap_threshold
from .server import start


def _bool(v: str) -> bool:
    return str(v).lower() in ("1", "true", "yes", "on")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vllm-sim", description="Simulated vLLM OpenAI-compatible server")
    p.add_argument("--host", default=None, help="default 127.0.0.1")
    p.add_argument("--port", type=int, default=None, help="default 8000")
    p.add_argument("--model", default=None)
    p.add_argument("--served-model-name", nargs="+", default=None)
    p.add_argument("--pod-name", default=None, help="x-inference-pod header (default: env POD_NAME)")
    p.add_argument("--lora-modules", nargs="+", default=[],
                   help="name=path or JSON {\"name\":..,\"path\":..}")
    p.add_argument("--max-loras", type=int, default=1)
    p.add_argument("--max-cpu-loras", type=int, default=None)
    p.add_argument("--max-lora-rank", type=int, default=16)
    p.add_argument("--enable-lora", nargs="?", const=True, type=_bool, default=None,
                   help="expose vllm:lora_requests_info (default: on when --lora-modules are given); "
                        "adapters load either way")
    p.add_argument("--max-num-seqs", type=int, default=256)
    p.add_argument("--max-num-batched-tokens", type=int, default=8192)
    p.add_argument("--block-size", type=int, default=16)
    p.add_argument("--num-gpu-blocks", "--num-gpu-blocks-override", dest="num_gpu_blocks", type=int,
                   default=None, help="KV-cache blocks (default: derived from H100/Llama-3.1-8B)")
    p.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    p.add_argument("--tensor-parallel-size", "-tp", type=int, default=1)
    p.add_argument("--max-model-len", type=int, default=None, help="default 131072")
    p.add_argument("--enable-prefix-caching", dest="prefix", nargs="?", const=True, type=_bool, default=True)
    p.add_argument("--no-enable-prefix-caching", dest="prefix", action="store_false")
    p.add_argument("--time-scale", type=float, default=1.0, help="multiply all simulated durations")
    p.add_argument("--startup-duration", type=float, default=0.0, help="seconds /health answers 503")
    p.add_argument("--mode", choices=("random", "echo"), default="random")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--default-max-tokens", type=int, default=128)
    p.add_argument("--embedding-dim", type=int, default=4096)
    p.add_argument("--failure-rate", type=float, default=0.0, help="fraction 0..1 of requests failed")
    p.add_argument("--failure-injection-rate", type=float, default=None,
                   help="llm-d-inference-sim spelling, percent 0..100")
    p.add_argument("--failure-types", nargs="+", default=["internal_error", "server_error"],
                   choices=("internal_error", "server_error", "rate_limit"))
    p.add_argument("--stall-after", type=int, default=0, help="stall the engine after N requests")
    p.add_argument("--stall-seconds", type=float, default=0.0)
    p.add_argument("--crash-after", type=int, default=0, help="crash on request N+1")
    p.add_argument("--crash-mode", choices=("exit", "close"), default=None,
                   help="exit = os._exit(1) (default for one replica), close = drop sockets")
    p.add_argument("--keep-alive-timeout", type=float, default=0.0,
                   help="close keep-alive connections idle this long (vLLM/uvicorn: 5); 0 = never")
    p.add_argument("--runtime", default="vllm",
                   choices=("vllm", "caikit-tgis", "caikit-standalone", "tgis", "openvino", "triton"),
                   help="the API to speak (seed 003's runtimes; default vLLM's OpenAI API)")
    p.add_argument("--grpc-port", type=int, default=None, help="the runtime's gRPC port (Caikit, TGIS, KServe v2)")
    p.add_argument("--max-new-tokens", type=int, default=1024, help="TGIS: the largest max_new_tokens allowed")
    p.add_argument("--max-sequence-length", dest="max_model_len", type=int, default=None,
                   help="TGIS spelling of --max-model-len")
    p.add_argument("--listen", action="append", default=[], metavar="HOST:PORT[:POD]",
                   help="run one more replica in this process (repeatable)")
    p.add_argument("--replicas-file", default=None,
                   help="JSON list of per-replica objects (host, port, pod_name, any SimConfig field)")
    # timing-model overrides (real seconds before --time-scale)
    p.add_argument("--step-overhead-ms", type=float, default=None)
    p.add_argument("--decode-per-seq-ms", type=float, default=None)
    p.add_argument("--prefill-per-token-us", type=float, default=None)
    p.add_argument("--lora-load-ms", type=float, default=None)
    return p


def _lora(spec: str) -> tuple[str, str]:
    spec = spec.strip()
    if spec.startswith("{"):
        d = json.loads(spec)
        return d["name"], d.get("path", d["name"])
    name, _, path = spec.partition("=")
    return name, path or name


def configs_from_args(argv: list[str] | None = None) -> list[SimConfig]:
    p = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    pos_model = None
    if argv and argv[0] == "serve":          # `vllm-sim serve MODEL ...` like `vllm serve MODEL ...`
        argv.pop(0)
    if argv and not argv[0].startswith("-"):
        pos_model = argv.pop(0)
    a, unknown = p.parse_known_args(argv)
    if unknown:
        sys.stderr.write(f"vllm-sim: ignoring unsupported vLLM flags: {' '.join(unknown)}\n")
    model = a.model or pos_model or "meta-llama/Llama-3.1-8B-Instruct"
    fr = a.failure_rate
    if a.failure_injection_rate is not None:
        fr = a.failure_injection_rate / 100.0
    main_explicit = a.host is not None or a.port is not None
    kw = dict(model=model, served_model_name=a.served_model_name or [], host=a.host or "127.0.0.1",
              port=8000 if a.port is None else a.port,
              pod_name=a.pod_name or "", lora_modules=[_lora(s) for s in a.lora_modules],
              enable_lora=bool(a.lora_modules) if a.enable_lora is None else a.enable_lora,
              max_loras=a.max_loras, max_cpu_loras=a.max_cpu_loras, max_lora_rank=a.max_lora_rank,
              max_num_seqs=a.max_num_seqs, max_num_batched_tokens=a.max_num_batched_tokens,
              block_size=a.block_size, num_gpu_blocks=a.num_gpu_blocks,
              gpu_memory_utilization=a.gpu_memory_utilization, tensor_parallel_size=a.tensor_parallel_size,
              max_model_len=a.max_model_len or 131072, enable_prefix_caching=a.prefix, time_scale=a.time_scale,
              startup_duration=a.startup_duration, mode=a.mode, seed=a.seed,
              default_max_tokens=a.default_max_tokens, embedding_dim=a.embedding_dim, failure_rate=fr,
              failure_types=a.failure_types, stall_after=a.stall_after, stall_seconds=a.stall_seconds,
              crash_after=a.crash_after, keep_alive_timeout=a.keep_alive_timeout, runtime=a.runtime,
              grpc_port=a.grpc_port, max_new_tokens=a.max_new_tokens)
    if a.step_overhead_ms is not None:
        kw["step_overhead_s"] = a.step_overhead_ms / 1e3
    if a.decode_per_seq_ms is not None:
        kw["decode_per_seq_s"] = a.decode_per_seq_ms / 1e3
    if a.prefill_per_token_us is not None:
        kw["prefill_per_token_s"] = a.prefill_per_token_us / 1e6
    if a.lora_load_ms is not None:
        kw["lora_load_disk_s"] = a.lora_load_ms / 1e3
    extra: list[dict] = []
    if a.replicas_file:
        with open(a.replicas_file) as f:
            extra.extend(json.load(f))
    for spec in a.listen:
        parts = spec.split(":")
        d = {"host": parts[0], "port": int(parts[1])}
        if len(parts) > 2 and parts[2]:
            d["pod_name"] = parts[2]
        extra.append(d)
    if not extra:
        return [SimConfig(**kw, crash_mode=a.crash_mode or "exit")]
    cfgs = []
    if main_explicit:  # --host/--port given: that replica runs too, --listen adds more
        cfgs.append(SimConfig(**kw, crash_mode=a.crash_mode or "close"))
    for d in extra:
        k = dict(kw)
        k.update(d)
        if "lora_modules" in d:
            k["lora_modules"] = [_lora(s) if isinstance(s, str) else tuple(s) for s in d["lora_modules"]]
        k.setdefault("crash_mode", a.crash_mode or "close")
        cfgs.append(SimConfig(**k))
    return cfgs


async def _amain(cfgs: list[SimConfig]) -> None:
    reps = await start(cfgs)
    for r in reps:
        c = r.cfg
        api = f" ({c.runtime} API, gRPC on {c.host}:{c.grpc_port})" if c.grpc_port else (f" ({c.runtime} API)" if c.runtime != "vllm" else "")
        print(f"vllm-sim: {c.pod_name} serving {', '.join(c.served_model_name)} on {r.url}{api} "
              f"(blocks={c.num_gpu_blocks}x{c.block_size}, max_num_seqs={c.max_num_seqs}, "
              f"time_scale={c.time_scale})", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for s in (signal.SIGINT, signal.SIGTERM):  # POSIX only, like the rest of the tooling
        loop.add_signal_handler(s, stop.set)
    await stop.wait()
    for r in reps:
        await r.stop()


def main(argv: list[str] | None = None) -> None:
    pin_mmap_threshold()     # this process is ours: keep its RSS a true measure of its heap
    cfgs = configs_from_args(argv)
    try:
        import uvloop  # type: ignore
        uvloop.install()
    except Exception:
        pass
    asyncio.run(_amain(cfgs))


if __name__ == "__main__":
    main()
