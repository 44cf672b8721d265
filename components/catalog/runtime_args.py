"""Per-runtime container args: each builder turns a model server's config and its resolved
preset into the server's command-line flags (``RuntimePreset.args``); OpenVINO's multi-model
config file too."""

from __future__ import annotations

from typing import Any

from .runtime_preset import MODELS_DIR, RuntimePreset, ServerSpec, served_models


def vllm_args(server: ServerSpec, preset: RuntimePreset) -> list[str]:
    """Seed 001's vLLM flags; LoRA flags whenever LoRA is enabled (even with no adapters yet) so
    that adding an adapter never changes the pod template."""
    args = [
        "--model", server.model,
        "--tensor-parallel-size", str(server.tensor_parallel_size),
        "--port", str(preset.port),
    ]
    if server.lora_enabled:
        args += ["--enable-lora", "--max-loras", str(server.max_loras), "--max-cpu-loras", str(server.max_cpu_loras)]
        if server.max_lora_rank is not None:
            args += ["--max-lora-rank", str(server.max_lora_rank)]
    return args + list(server.extra_args)


def tgis_args(server: ServerSpec, preset: RuntimePreset) -> list[str]:
    return [
        f"--model-name={server.model}",
        f"--num-shard={server.tensor_parallel_size}",
        f"--port={preset.port}",
        f"--grpc-port={preset.grpc_port}",
        *server.extra_args,
    ]


def extra_only(server: ServerSpec, preset: RuntimePreset) -> list[str]:
    return list(server.extra_args)


OVMS_CONFIG_DIR = "/etc/ovms"
OVMS_CONFIG = f"{OVMS_CONFIG_DIR}/config.json"


def ovms_config(server: ServerSpec) -> dict[str, Any]:
    """OpenVINO Model Server's multi-model config file (``--config_path``): one entry per model,
    each read from ``/mnt/models/<model>`` (OVMS's model_config_list format)."""
    return {"model_config_list": [{"config": {"name": m, "base_path": f"{MODELS_DIR}/{m}"}} for m in served_models(server)]}


def openvino_args(server: ServerSpec, preset: RuntimePreset) -> list[str]:
    """One model: ``--model_name``/``--model_path`` (the model's name is what KServe v2 clients
    put in the path). Several: ``--config_path`` to the config file ``ovms_config`` renders."""
    models = [f"--config_path={OVMS_CONFIG}"] if server.extra_models else [f"--model_name={server.model}", f"--model_path={MODELS_DIR}"]
    return [
        *models,
        f"--port={preset.grpc_port}",
        f"--rest_port={preset.port}",
        "--grpc_bind_address=0.0.0.0",
        "--rest_bind_address=0.0.0.0",
        "--file_system_poll_wait_seconds=0",
        "--metrics_enable",
        *server.extra_args,
    ]


def triton_args(server: ServerSpec, preset: RuntimePreset) -> list[str]:
    """Explicit model control: Triton loads exactly the stack's models from the repository."""
    return [
        f"--model-repository={MODELS_DIR}",
        "--model-control-mode=explicit",
        *(f"--load-model={m}" for m in served_models(server)),
        f"--http-port={preset.port}",
        f"--grpc-port={preset.grpc_port}",
        "--allow-http=true",
        "--allow-grpc=true",
        *server.extra_args,
    ]
