from endpoint_picker.scrape import parse_metrics

VLLM = b"""# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="llama"} 3.0
vllm:num_requests_waiting{engine="1",model_name="llama"} 2.0
vllm:num_requests_waiting_total_fake 99
vllm:num_requests_running{engine="0",model_name="llama"} 7.0
vllm:kv_cache_usage_perc{engine="0",model_name="llama"} 0.42
vllm:lora_requests_info{max_lora="2",running_lora_adapters="lora4,lora2",waiting_lora_adapters="lora3"} 1.257894567e+09
vllm:lora_requests_info{max_lora="2",running_lora_adapters="old",waiting_lora_adapters=""} 1.0e+09
vllm:cache_config_info{block_size="16",cache_dtype="auto",num_gpu_blocks="2048"} 1.0
vllm:time_to_first_token_seconds_bucket{le="0.001"} 0
"""


def test_parses_the_series_we_use():
    m = parse_metrics(VLLM)
    assert m.waiting == 5.0  # summed over engines; the _total_fake series is a different metric
    assert m.running == 7.0
    assert m.kv_usage == 0.42
    assert m.active_loras == {"lora4", "lora2"}  # newest timestamp wins over "old"
    assert m.waiting_loras == {"lora3"}
    assert m.max_lora == 2
    assert (m.block_size, m.num_gpu_blocks) == (16, 2048)


def test_old_gpu_cache_metric_name_is_a_fallback():
    m = parse_metrics(b"vllm:gpu_cache_usage_perc 0.9\nvllm:num_requests_waiting 1\n")
    assert m.kv_usage == 0.9
    assert m.waiting == 1


def test_missing_metrics_leave_zeros():
    m = parse_metrics(b"# nothing here\nprocess_cpu_seconds_total 5\n")
    assert (m.waiting, m.running, m.kv_usage, m.max_lora) == (0, 0, 0, 0)
