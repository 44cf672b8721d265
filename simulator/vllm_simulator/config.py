"""Configuration of one simulated vLLM replica and its timing model."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

VLLM_VERSION = "0.11.0"

# ---------------------------------------------------------------------------
# Timing model constants: one vLLM replica, Llama-3.1-8B-Instruct, bf16, 1x H100
# 80GB SXM.  Values are *real* seconds; --time-scale multiplies every duration.
# Sources and derivations are in simulator/README.md ("Timing model").
# ---------------------------------------------------------------------------
STEP_OVERHEAD_S = 0.008          # fixed cost of one engine step (batch-1 decode ~8 ms)
DECODE_PER_SEQ_S = 0.0001        # extra step time per sequence decoding in the batch
KV_READ_PER_TOKEN_S = 39e-9      # attention reads 128 KiB/token at 3.35 TB/s HBM3
PREFILL_PER_TOKEN_S = 30e-6      # ~33k prefill tok/s (16 GFLOP/token at ~54% of 989 TFLOPS)
PREFILL_ATTN_PER_TOKEN_CTX_S = 1e-9  # quadratic attention term, per token per context token
LORA_STEP_OVERHEAD = 0.10        # +10% step compute when a LoRA adapter is in the batch
LORA_LOAD_GPU_S = 0.005          # activate an adapter already in the CPU cache
LORA_LOAD_DISK_S = 0.100         # load an adapter from disk (not in the CPU cache)

# KV-cache sizing for Llama-3.1-8B: 32 layers x 8 KV heads x 128 dim x 2 (K,V) x 2 B
KV_BYTES_PER_TOKEN = 32 * 8 * 128 * 2 * 2      # 131072 = 128 KiB
H100_MEM_BYTES = 81559 * 1024 * 1024           # 79.6 GiB visible to CUDA
WEIGHT_BYTES = 8_030_261_248 * 2               # 8.03B params, bf16
ACTIVATION_RESERVE_BYTES = int(1.6 * 1024**3)  # activations + CUDA graphs (profiled peak)


def default_num_gpu_blocks(gpu_memory_utilization: float = 0.9, block_size: int = 16,
                           tensor_parallel_size: int = 1) -> int:
    tp = max(1, tensor_parallel_size)
    free_per_gpu = gpu_memory_utilization * H100_MEM_BYTES - WEIGHT_BYTES / tp - ACTIVATION_RESERVE_BYTES
    tokens = int(max(0.0, free_per_gpu) * tp / KV_BYTES_PER_TOKEN)
    return max(1, tokens // block_size)


@dataclass
class SimConfig:
    model: str = "meta-llama/Llama-3.1-8B-Instruct"
    served_model_name: list[str] = field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = 8000
    pod_name: str = ""
    lora_modules: list[tuple[str, str]] = field(default_factory=list)
    enable_lora: bool = True        # vllm:lora_requests_info on /metrics (vLLM: only with --enable-lora)
    max_loras: int = 1
    max_cpu_loras: int | None = None
    max_lora_rank: int = 16
    max_num_seqs: int = 256
    max_num_batched_tokens: int = 8192
    block_size: int = 16
    num_gpu_blocks: int | None = None
    gpu_memory_utilization: float = 0.9
    tensor_parallel_size: int = 1
    max_model_len: int = 131072
    enable_prefix_caching: bool = True
    time_scale: float = 1.0
    startup_duration: float = 0.0
    mode: str = "random"            # random | echo
    seed: int = 0
    default_max_tokens: int = 128
    embedding_dim: int = 4096
    failure_rate: float = 0.0
    failure_types: list[str] = field(default_factory=lambda: ["internal_error", "server_error"])
    stall_after: int = 0
    stall_seconds: float = 0.0
    crash_after: int = 0
    crash_mode: str = "close"       # close (this replica stops) | exit (process exits)
    keep_alive_timeout: float = 0.0  # close idle keep-alive connections after S s (uvicorn: 5); 0 = never
    runtime: str = "vllm"           # the API spoken: vllm (OpenAI) or a seed-003 runtime (protocols/)
    grpc_port: int | None = None    # the runtime's gRPC port (None: no gRPC server)
    max_new_tokens: int = 1024      # TGIS --max-new-tokens: the largest max_new_tokens a request may ask
    # timing constants (overridable for experiments)
    step_overhead_s: float = STEP_OVERHEAD_S
    decode_per_seq_s: float = DECODE_PER_SEQ_S
    kv_read_per_token_s: float = KV_READ_PER_TOKEN_S
    prefill_per_token_s: float = PREFILL_PER_TOKEN_S
    prefill_attn_per_token_ctx_s: float = PREFILL_ATTN_PER_TOKEN_CTX_S
    lora_step_overhead: float = LORA_STEP_OVERHEAD
    lora_load_gpu_s: float = LORA_LOAD_GPU_S
    lora_load_disk_s: float = LORA_LOAD_DISK_S

    def __post_init__(self) -> None:
        if not self.served_model_name:
            self.served_model_name = [self.model]
        if not self.pod_name:
            self.pod_name = os.environ.get("POD_NAME", "")  # else set by the server after bind
        if self.max_cpu_loras is None or self.max_cpu_loras < self.max_loras:
            self.max_cpu_loras = max(self.max_loras, self.max_cpu_loras or 0)
        if self.num_gpu_blocks is None or self.num_gpu_blocks <= 0:
            self.num_gpu_blocks = default_num_gpu_blocks(
                self.gpu_memory_utilization, self.block_size, self.tensor_parallel_size)
        if self.mode not in ("random", "echo"):
            raise ValueError(f"unknown --mode {self.mode!r}")
        if self.time_scale <= 0:
            raise ValueError("--time-scale must be > 0")
        from .protocols import RUNTIMES

        if self.runtime not in RUNTIMES:
            raise ValueError(f"unknown --runtime {self.runtime!r}; known: {', '.join(RUNTIMES)}")

    def replace(self, **kw) -> "SimConfig":
        return dataclasses.replace(self, **kw)
