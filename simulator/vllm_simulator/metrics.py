"""Prometheus text exposition with vLLM's metric names, labels and buckets.

Bucket bounds are vLLM v1's (vllm/v1/metrics/loggers.py): TTFT, inter-token /
time-per-output-token and e2e request latency.
"""

from __future__ import annotations

import bisect
import time

TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5,
                5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0,
               7.5, 10.0, 20.0, 40.0, 80.0)
E2E_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0,
               60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)
FINISHED_REASONS = ("stop", "length", "abort")


def _fmt(v: float) -> str:
    return repr(float(v))


def _esc(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Histogram:
    __slots__ = ("bounds", "counts", "sum", "count")

    def __init__(self, bounds):
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, v: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, v)] += 1
        self.sum += v
        self.count += 1

    def observe_many(self, v: float, n: int) -> None:
        self.counts[bisect.bisect_left(self.bounds, v)] += n
        self.sum += v * n
        self.count += n

    def render(self, name: str, help_: str, lbl: str, out: list) -> None:
        key = (name, lbl)
        pre = _PREFIXES.get(key)
        if pre is None:
            pre = _PREFIXES[key] = (
                f"# HELP {name} {help_}\n# TYPE {name} histogram\n",
                [f'{name}_bucket{{le="{_fmt(b)}",{lbl}}} ' for b in self.bounds]
                + [f'{name}_bucket{{le="+Inf",{lbl}}} '],
                f"{name}_count{{{lbl}}} ", f"{name}_sum{{{lbl}}} ")
        head, buckets, cnt, sm = pre
        out.append(head)
        acc = 0
        for p, c in zip(buckets, self.counts):
            acc += c
            out.append(f"{p}{acc}.0\n")
        out.append(f"{cnt}{self.count}.0\n{sm}{_fmt(self.sum)}\n")


_PREFIXES: dict = {}


class Metrics:
    """Counters and histograms of one replica (gauges are read from the engine)."""

    def __init__(self):
        self.prompt_tokens = 0
        self.generation_tokens = 0
        self.prefix_queries = 0
        self.prefix_hits = 0
        self.preemptions = 0
        self.success = {r: 0 for r in FINISHED_REASONS}
        self.ttft = Histogram(TTFT_BUCKETS)
        self.itl = Histogram(ITL_BUCKETS)
        self.e2e = Histogram(E2E_BUCKETS)
        self.queue = Histogram(E2E_BUCKETS)
        self._cache_key = None
        self._cache = b""

    def render(self, engine) -> bytes:
        key = engine.version
        if key == self._cache_key:
            return self._cache
        cfg = engine.cfg
        # vLLM v1 labels every engine series with model_name and engine (the DP rank, "0" here)
        lbl = f'model_name="{_esc(cfg.served_model_name[0])}",engine="0"'
        out: list[str] = []
        a = out.append
        running, waiting = len(engine.running), len(engine.waiting)
        usage = engine.kv.usage()
        a("# HELP vllm:num_requests_running Number of requests in model execution batches.\n"
          "# TYPE vllm:num_requests_running gauge\n"
          f"vllm:num_requests_running{{{lbl}}} {_fmt(running)}\n")
        a("# HELP vllm:num_requests_waiting Number of requests waiting to be processed.\n"
          "# TYPE vllm:num_requests_waiting gauge\n"
          f"vllm:num_requests_waiting{{{lbl}}} {_fmt(waiting)}\n")
        a("# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.\n"
          "# TYPE vllm:kv_cache_usage_perc gauge\n"
          f"vllm:kv_cache_usage_perc{{{lbl}}} {_fmt(usage)}\n")
        a("# HELP vllm:gpu_cache_usage_perc GPU KV-cache usage. 1 means 100 percent usage.\n"
          "# TYPE vllm:gpu_cache_usage_perc gauge\n"
          f"vllm:gpu_cache_usage_perc{{{lbl}}} {_fmt(usage)}\n")
        a("# HELP vllm:lora_requests_info Running stats on lora requests.\n"
          "# TYPE vllm:lora_requests_info gauge\n")
        for (run_l, wait_l), ts in engine.lora_series.items():
            a(f'vllm:lora_requests_info{{max_lora="{cfg.max_loras}",running_lora_adapters="{_esc(run_l)}",'
              f'waiting_lora_adapters="{_esc(wait_l)}"}} {_fmt(ts)}\n')
        a("# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig\n"
          "# TYPE vllm:cache_config_info gauge\n"
          f'vllm:cache_config_info{{block_size="{cfg.block_size}",cache_dtype="auto",'
          f'calculate_kv_scales="False",cpu_offload_gb="0",engine="0",'
          f'enable_prefix_caching="{cfg.enable_prefix_caching}",'
          f'gpu_memory_utilization="{cfg.gpu_memory_utilization}",'
          f'is_attention_free="False",num_cpu_blocks="None",'
          f'num_gpu_blocks="{cfg.num_gpu_blocks}",prefix_caching_hash_algo="sha256",'
          f'sliding_window="None",swap_space="0"}} 1.0\n')
        a("# HELP vllm:num_preemptions_total Cumulative number of preemption from the engine.\n"
          "# TYPE vllm:num_preemptions_total counter\n"
          f"vllm:num_preemptions_total{{{lbl}}} {_fmt(self.preemptions)}\n")
        a("# HELP vllm:prefix_cache_queries_total Prefix cache queries, in terms of number of "
          "queried tokens.\n# TYPE vllm:prefix_cache_queries_total counter\n"
          f"vllm:prefix_cache_queries_total{{{lbl}}} {_fmt(self.prefix_queries)}\n")
        a("# HELP vllm:prefix_cache_hits_total Prefix cache hits, in terms of number of "
          "cached tokens.\n# TYPE vllm:prefix_cache_hits_total counter\n"
          f"vllm:prefix_cache_hits_total{{{lbl}}} {_fmt(self.prefix_hits)}\n")
        a("# HELP vllm:prompt_tokens_total Number of prefill tokens processed.\n"
          "# TYPE vllm:prompt_tokens_total counter\n"
          f"vllm:prompt_tokens_total{{{lbl}}} {_fmt(self.prompt_tokens)}\n")
        a("# HELP vllm:generation_tokens_total Number of generation tokens processed.\n"
          "# TYPE vllm:generation_tokens_total counter\n"
          f"vllm:generation_tokens_total{{{lbl}}} {_fmt(self.generation_tokens)}\n")
        a("# HELP vllm:request_success_total Count of successfully processed requests.\n"
          "# TYPE vllm:request_success_total counter\n")
        for r in FINISHED_REASONS:
            a(f'vllm:request_success_total{{finished_reason="{r}",{lbl}}} {_fmt(self.success[r])}\n')
        self.ttft.render("vllm:time_to_first_token_seconds",
                         "Histogram of time to first token in seconds.", lbl, out)
        self.itl.render("vllm:inter_token_latency_seconds",
                        "Histogram of inter-token latency in seconds.", lbl, out)
        self.itl.render("vllm:time_per_output_token_seconds",
                        "Histogram of time per output token in seconds.", lbl, out)
        self.e2e.render("vllm:e2e_request_latency_seconds",
                        "Histogram of e2e request latency in seconds.", lbl, out)
        self.queue.render("vllm:request_queue_time_seconds",
                          "Histogram of time spent in WAITING phase for request.", lbl, out)
        body = "".join(out).encode()
        self._cache_key = key
        self._cache = body
        return body


def now() -> float:
    return time.time()
