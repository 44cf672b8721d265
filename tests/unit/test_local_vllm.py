"""igw/local/vllm_replicas.py without vLLM: the stack setting, the substitution, the preflight."""

from __future__ import annotations

import os

import httpx
import pytest

from igw.local.plan_replicas import Replica
from igw.local.vllm_replicas import (
    MAX_MODEL_LEN, MAX_NUM_SEQS, SettingsError, VllmCpuLauncher, local_settings, locate_vllm, preflight, substitute,
)
from igw.stackfile import read_stack

INFO = {
    "python": "/env/bin/python", "server_module": "vllm.entrypoints.openai.api_server",
    "model_root": "/cache/tiny-model-abc", "model_dir": "/cache/tiny-model-abc/model",
    "chat_template": "/cache/tiny-model-abc/chat_template.jinja",
    "adapters": {"tiny-lora-a": "/cache/tiny-model-abc/adapters/tiny-lora-a",
                 "tiny-lora-b": "/cache/tiny-model-abc/adapters/tiny-lora-b"},
    "env_ready": True, "model_ready": True, "env_dir": "/env", "process_env": {"HF_HUB_OFFLINE": "1"},
    "core_binding": [{"VLLM_CPU_OMP_THREADS_BIND": "0"}, {"VLLM_CPU_OMP_THREADS_BIND": "1"}],
}


def replica(args: list[str], adapters: list[tuple[str, str]]) -> Replica:
    return Replica(name="pod-0", deployment="d", address="127.0.1.10", ports=(8000,), labels={},
                   model="meta-llama/Llama-3.1-8B-Instruct", adapters=adapters, args=args)


def test_the_committed_stack_asks_for_real_vllm():
    assert local_settings(read_stack("local-vllm")).replicas == "vllm-cpu"
    assert local_settings(read_stack("local")).replicas == "vllm-sim"  # no igw-local keys: the default


@pytest.mark.parametrize("config,message", [
    ({"igw-local:replicas": "vllm"}, "igw-local:replicas: 'vllm' is not allowed; use 'vllm-sim' or 'vllm-cpu'"),
    ({"igw-local:replica": "vllm-cpu"}, "igw-local:replica: unknown key; allowed: igw-local:replicas"),
])
def test_bad_settings_name_the_key_the_value_and_the_choices(config, message):
    with pytest.raises(SettingsError) as e:
        local_settings(config)
    assert str(e.value) == message


def test_the_stack_model_and_adapters_are_served_by_the_tiny_ones():
    rendered = ["--model", "meta-llama/Llama-3.1-8B-Instruct", "--tensor-parallel-size", "1", "--enable-lora",
                "--max-loras", "2", "--max-cpu-loras", "12", "--max-model-len", "131072", "--max-num-seqs", "256",
                "--gpu-memory-utilization=0.95"]
    adapters = [("food-review", "Kawon/a"), ("food-review-v2", "Kawon/b"), ("cad-fabricator", "x/c")]
    args, sub = substitute(replica(rendered, adapters), INFO)
    assert args == [
        "--model", "/cache/tiny-model-abc/model", "--served-model-name", "meta-llama/Llama-3.1-8B-Instruct",
        "--host", "127.0.1.10", "--port", "8000", "--max-model-len", str(MAX_MODEL_LEN),
        "--chat-template", "/cache/tiny-model-abc/chat_template.jinja",
        "--enable-lora", "--max-loras", "2", "--max-cpu-loras", "12", "--max-num-seqs", str(MAX_NUM_SEQS),
        "--max-lora-rank", "8", "--lora-modules", "food-review=/cache/tiny-model-abc/adapters/tiny-lora-a",
        "food-review-v2=/cache/tiny-model-abc/adapters/tiny-lora-b", "cad-fabricator=/cache/tiny-model-abc/adapters/tiny-lora-a",
    ]
    assert sub.adapters == [("food-review", "tiny-lora-a"), ("food-review-v2", "tiny-lora-b"), ("cad-fabricator", "tiny-lora-a")]
    assert sub.dropped == ["--tensor-parallel-size", "1", "--max-model-len", "131072", "--max-num-seqs", "256",
                           "--gpu-memory-utilization", "0.95"]
    assert sub.describe("tiny-model-abc") == [
        "model meta-llama/Llama-3.1-8B-Instruct -> tiny Llama (tiny-model-abc)",
        "adapter food-review -> tiny-lora-a", "adapter food-review-v2 -> tiny-lora-b", "adapter cad-fabricator -> tiny-lora-a",
        "not applied on CPU: --tensor-parallel-size 1 --max-model-len 131072 --max-num-seqs 256 --gpu-memory-utilization 0.95",
    ]


def test_served_model_names_are_kept_and_no_lora_flags_without_adapters():
    args, sub = substitute(replica(["--model", "org/m", "--served-model-name", "a", "b", "--enable-prefix-caching"], []), INFO)
    assert args[args.index("--served-model-name") + 1:args.index("--host")] == ["a", "b"]
    assert "--enable-prefix-caching" in args and "--lora-modules" not in args and "--enable-lora" not in args
    assert sub.served_names == ["a", "b"] and sub.adapters == []


def test_preflight_names_the_setup_command_and_the_replica_cap():
    assert preflight(INFO, 2) == []
    problems = preflight({**INFO, "env_ready": False}, 3)
    assert problems[0] == "the vLLM environment not prepared (/env, /cache/tiny-model-abc): run .ci/setup-vllm"
    assert problems[1].startswith("the stack asks for 3 model-server pods; igw-local:replicas vllm-cpu runs at most 2")


def test_each_server_binds_its_engine_to_a_core_of_its_own_in_turn(tmp_path):
    """vLLM's own 'auto' binding puts every server on core 0 of a 2-core machine."""
    launcher = VllmCpuLauncher(httpx.Client(), INFO)
    envs = [launcher.proc(replica([], []), tmp_path).env for _ in range(3)]
    assert [e["VLLM_CPU_OMP_THREADS_BIND"] for e in envs] == ["0", "1", "0"]
    assert all(e["HF_HUB_OFFLINE"] == "1" for e in envs)


def test_locate_offers_one_binding_per_core_this_process_may_use():
    cores = sorted(os.sched_getaffinity(0))
    assert locate_vllm()["core_binding"] == [{"VLLM_CPU_OMP_THREADS_BIND": str(c)} for c in cores]
