"""Prometheus text exposition laid out like real vLLM's (0.32, v1 engine, one API server).

Every ``vllm:`` family of a real page is here, in its order, with its type, label names, label
order (sorted), help text and bucket bounds (metric_catalog.py), counters with their ``_created``
gauges as vLLM's multiprocess collector writes them. The simulator models most values; the rest
stay at what a text-only server without a KV connector shows (0). ``vllm:lora_requests_info`` has
real vLLM's semantics (Scheduler.lora_in_flight): no sample until the first step, every in-flight
adapter in *both* lists, a series per label combination that stays on the page.

Rendering is cached per engine state version; each histogram caches its own text until it gets a
new observation, so a scrape re-renders only what moved.
"""

from __future__ import annotations

import bisect
import time

from .config import KV_BYTES_PER_TOKEN
from .metric_catalog import (
    ADMISSION_REASONS, CACHE_CONFIG_STATIC, CACHED_SOURCES, ESTIMATE_COUNTERS, FINISHED_REASONS, HELP, ITERATION_TOKENS_BUCKETS, ITL_BUCKETS,
    NUM_PREEMPTIONS_BUCKETS, PARAMS_N_BUCKETS, PROMPT_SOURCES, REQUEST_LATENCY_BUCKETS, SLEEP_STATES, TTFT_BUCKETS,
    UNMODELLED_COUNTERS, request_tokens_buckets,
)

E2E_BUCKETS = REQUEST_LATENCY_BUCKETS


def _fmt(v: float) -> str:
    return repr(float(v))


def _esc(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _head(name: str, typ: str, help_: str | None = None) -> str:
    return f"# HELP {name} {help_ if help_ is not None else HELP[name]}\n# TYPE {name} {typ}\n"


class Histogram:
    __slots__ = ("bounds", "counts", "sum", "count", "_text", "_text_count")

    def __init__(self, bounds):
        self.bounds = tuple(float(b) for b in bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0
        self.count = 0
        self._text = ""
        self._text_count = -1

    def observe(self, v: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, v)] += 1
        self.sum += v
        self.count += 1

    def observe_many(self, v: float, n: int) -> None:
        self.counts[bisect.bisect_left(self.bounds, v)] += n
        self.sum += v * n
        self.count += n

    def render(self, name: str, engine_lbl: str, model_lbl: str, created: str) -> str:
        """buckets, count, sum, then the `_created` gauge (vLLM's layout); cached until observed."""
        if self._text_count == self.count:
            return self._text
        out = [_head(name, "histogram")]
        acc = 0
        for b, c in zip(self.bounds, self.counts):
            acc += c
            out.append(f'{name}_bucket{{{engine_lbl},le="{_fmt(b)}",{model_lbl}}} {_fmt(acc)}\n')
        out.append(f'{name}_bucket{{{engine_lbl},le="+Inf",{model_lbl}}} {_fmt(self.count)}\n')
        out.append(f"{name}_count{{{engine_lbl},{model_lbl}}} {_fmt(self.count)}\n")
        out.append(f"{name}_sum{{{engine_lbl},{model_lbl}}} {_fmt(self.sum)}\n")
        out.append(_head(f"{name}_created", "gauge", HELP[name]))
        out.append(f"{name}_created{{{engine_lbl},{model_lbl}}} {created}\n")
        self._text = "".join(out)
        self._text_count = self.count
        return self._text


class Metrics:
    """Counters and histograms of one replica (gauges are read from the engine at render time)."""

    def __init__(self, max_model_len: int = 131072):
        self.created = _fmt(time.time())
        self.prompt_tokens = 0
        self.prompt_cached = 0
        self.generation_tokens = 0
        self.prefix_queries = 0
        self.prefix_hits = 0
        self.preemptions = 0
        self.success = {r: 0 for r in FINISHED_REASONS}
        self.ttft = Histogram(TTFT_BUCKETS)
        self.itl = Histogram(ITL_BUCKETS)
        self.tpot = Histogram(ITL_BUCKETS)
        self.e2e = Histogram(REQUEST_LATENCY_BUCKETS)
        self.queue = Histogram(REQUEST_LATENCY_BUCKETS)
        self.inference = Histogram(REQUEST_LATENCY_BUCKETS)
        self.prefill = Histogram(REQUEST_LATENCY_BUCKETS)
        self.decode = Histogram(REQUEST_LATENCY_BUCKETS)
        self.num_preemptions = Histogram(NUM_PREEMPTIONS_BUCKETS)
        self.iteration_tokens = Histogram(ITERATION_TOKENS_BUCKETS)
        self.params_n = Histogram(PARAMS_N_BUCKETS)
        self.bind_max_model_len(max_model_len)
        self._cache_key = None
        self._cache = b""

    def bind_max_model_len(self, max_model_len: int) -> None:
        """Token-count histograms have 1-2-5 buckets up to max_model_len (set by the engine's config)."""
        bounds = request_tokens_buckets(max_model_len)
        self.req_prompt_tokens = Histogram(bounds)
        self.req_generation_tokens = Histogram(bounds)
        self.req_max_generation_tokens = Histogram(bounds)
        self.req_params_max_tokens = Histogram(bounds)
        self.req_prefill_kv_computed = Histogram(bounds)

    def finished(self, *, prompt_len: int, cached: int, generated: int, max_tokens: int, preempted: int,
                 arrival: float, scheduled: float, first_token: float, last_token: float, now: float) -> None:
        """Per-request histograms at the end of a request, as vLLM's FinishedRequestStats."""
        self.e2e.observe(now - arrival)
        self.req_prompt_tokens.observe(prompt_len)
        self.req_generation_tokens.observe(generated)
        self.req_max_generation_tokens.observe(max_tokens)
        self.req_params_max_tokens.observe(max_tokens)
        self.params_n.observe(1)
        self.num_preemptions.observe(preempted)
        self.req_prefill_kv_computed.observe(max(0, prompt_len - cached))
        if scheduled and first_token:
            self.inference.observe(last_token - scheduled)
            self.prefill.observe(first_token - scheduled)
            decode = last_token - first_token
            self.decode.observe(decode)
            self.tpot.observe(decode / (generated - 1) if generated > 1 else 0.0)

    # ------------------------------------------------------------------ rendering
    def render(self, engine) -> bytes:
        key = engine.version
        if key == self._cache_key:
            return self._cache
        cfg = engine.cfg
        base = {"engine": "0", "model_name": cfg.served_model_name[0]}
        lbl = _labels(base)
        eng, model = 'engine="0"', _labels({"model_name": base["model_name"]})
        created = self.created
        out: list[str] = []
        a = out.append

        def counter(name: str, values: dict[str, float] | float, label: str = "", common: dict = base) -> None:
            """`vllm:<name>_total` then its `_created` gauge; `values` by `label` value, or one value."""
            total, made = f"vllm:{name}_total", f"vllm:{name}_created"
            series = [(_labels(common, {label: k}), v) for k, v in values.items()] if label else [(_labels(common), values)]
            a(_head(total, "counter"))
            a("".join(f"{total}{{{ls}}} {_fmt(v)}\n" for ls, v in series))
            a(_head(made, "gauge", HELP[total]))
            a("".join(f"{made}{{{ls}}} {created}\n" for ls, _ in series))

        def gauge(name: str, values: dict[str, float] | float, label: str = "") -> None:
            a(_head(name, "gauge"))
            if label:
                a("".join(f"{name}{{{_labels(base, {label: k})}}} {_fmt(v)}\n" for k, v in values.items()))
            else:
                a(f"{name}{{{lbl}}} {_fmt(values)}\n")

        for name in ESTIMATE_COUNTERS:
            counter(name, 0)
        running, waiting = len(engine.running), len(engine.waiting)
        deferred = engine.lora_deferred()
        gauge("vllm:num_requests_running", running)
        gauge("vllm:num_requests_waiting", waiting)
        gauge("vllm:num_requests_waiting_by_reason", {"capacity": waiting - deferred, "deferred": deferred}, "reason")
        gauge("vllm:engine_sleep_state", {s: float(s == "awake") for s in SLEEP_STATES}, "sleep_state")
        gauge("vllm:kv_cache_usage_perc", engine.kv.usage())
        counter("prefix_cache_queries", self.prefix_queries)
        counter("prefix_cache_hits", self.prefix_hits)
        for name in UNMODELLED_COUNTERS:
            counter(name, 0)
        counter("num_preemptions", self.preemptions)
        counter("prompt_tokens", self.prompt_tokens)
        counter("prompt_tokens_by_source", {"local_compute": self.prompt_tokens - self.prompt_cached,
                                            "local_cache_hit": self.prompt_cached, "external_kv_transfer": 0}, "source")
        counter("prompt_tokens_cached", self.prompt_cached)
        counter("prompt_tokens_cached_by_source", {s: self.prompt_cached if s == "device" else 0 for s in CACHED_SOURCES}, "source")
        counter("generation_tokens", self.generation_tokens)
        counter("request_success", {r: self.success.get(r, 0) for r in FINISHED_REASONS}, "finished_reason")
        counter("admission_rejections", {r: 0 for r in ADMISSION_REASONS}, "reason", common={"model_name": base["model_name"]})
        for name, hist in (
            ("vllm:request_prompt_tokens", self.req_prompt_tokens),
            ("vllm:request_generation_tokens", self.req_generation_tokens),
            ("vllm:iteration_tokens_total", self.iteration_tokens),
            ("vllm:request_max_num_generation_tokens", self.req_max_generation_tokens),
            ("vllm:request_params_n", self.params_n),
            ("vllm:request_params_max_tokens", self.req_params_max_tokens),
            ("vllm:time_to_first_token_seconds", self.ttft),
            ("vllm:inter_token_latency_seconds", self.itl),
            ("vllm:request_time_per_output_token_seconds", self.tpot),
            ("vllm:e2e_request_latency_seconds", self.e2e),
            ("vllm:request_queue_time_seconds", self.queue),
            ("vllm:request_inference_time_seconds", self.inference),
            ("vllm:request_prefill_time_seconds", self.prefill),
            ("vllm:request_decode_time_seconds", self.decode),
            ("vllm:request_num_preemptions", self.num_preemptions),
            ("vllm:request_prefill_kv_computed_tokens", self.req_prefill_kv_computed),
        ):
            a(hist.render(name, eng, model, created))
        if cfg.enable_lora:
            a(_head("vllm:lora_requests_info", "gauge"))
            for adapters, ts in engine.lora_series.items():
                a(f"vllm:lora_requests_info{{{_labels({'max_lora': str(cfg.max_loras), 'running_lora_adapters': adapters, 'waiting_lora_adapters': adapters})}}} {_fmt(ts)}\n")
        a(_head("vllm:cache_config_info", "gauge"))
        a(f"vllm:cache_config_info{{{_cache_config_labels(cfg)}}} 1.0\n")
        body = "".join(out).encode()
        self._cache_key = key
        self._cache = body
        return body


def _labels(*groups: dict[str, str]) -> str:
    """`k="v"` pairs of all groups, in label-name order (how vLLM's multiprocess collector writes them)."""
    merged: dict[str, str] = {}
    for g in groups:
        merged.update(g)
    return ",".join(f'{k}="{_esc(str(v))}"' for k, v in sorted(merged.items()))


_CACHE_CONFIG_CACHE: dict[tuple, str] = {}


def _cache_config_labels(cfg) -> str:
    key = (cfg.block_size, cfg.num_gpu_blocks, cfg.enable_prefix_caching, cfg.gpu_memory_utilization, cfg.max_model_len)
    text = _CACHE_CONFIG_CACHE.get(key)
    if text is None:
        tokens = cfg.num_gpu_blocks * cfg.block_size
        labels = dict(CACHE_CONFIG_STATIC)
        labels.update({
            "block_size": str(cfg.block_size),
            "effective_attention_block_size": str(cfg.block_size),
            "enable_prefix_caching": str(cfg.enable_prefix_caching),
            "engine": "0",
            "gpu_memory_utilization": str(cfg.gpu_memory_utilization),
            "kv_cache_max_concurrency": repr(tokens / cfg.max_model_len),
            "kv_cache_memory_bytes": str(tokens * KV_BYTES_PER_TOKEN),
            "kv_cache_size_tokens": str(tokens),
            "num_gpu_blocks": str(cfg.num_gpu_blocks),
        })
        text = _CACHE_CONFIG_CACHE[key] = _labels(labels)
    return text


def now() -> float:
    return time.time()
