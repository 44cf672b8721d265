"""Facts about GPU machine types: the one place a machine type turns into accelerators.

Source: cloud.google.com/compute/docs/gpus ("A3 Mega: nvidia-h100-mega-80gb; A3 Standard:
nvidia-h100-80gb"; "A3 Ultra: NVIDIA H200 SXM GPUs"); local SSD counts from
accelerated-platforms' a3-highgpu-8g pools (16 x 375 GB bundled). Counts for 1g/2g/4g are the
bundled 2/4/8 disks (not verified against a live project).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GpuMachine:
    machine_type: str
    accelerator: str
    gpus: int
    local_ssds: int
    short: str  # used in pool names, e.g. gpu-h100x8-a3h8

    @property
    def gpu_family(self) -> str:
        return "h100"


H100_MACHINES: dict[str, GpuMachine] = {
    m.machine_type: m
    for m in (
        GpuMachine("a3-highgpu-1g", "nvidia-h100-80gb", 1, 2, "a3h1"),
        GpuMachine("a3-highgpu-2g", "nvidia-h100-80gb", 2, 4, "a3h2"),
        GpuMachine("a3-highgpu-4g", "nvidia-h100-80gb", 4, 8, "a3h4"),
        GpuMachine("a3-highgpu-8g", "nvidia-h100-80gb", 8, 16, "a3h8"),
        GpuMachine("a3-edgegpu-8g", "nvidia-h100-80gb", 8, 16, "a3e8"),
        GpuMachine("a3-megagpu-8g", "nvidia-h100-mega-80gb", 8, 16, "a3m8"),
    )
}

# Machine types people reach for that are not H100s: rejected with a pointed message.
NOT_H100: dict[str, str] = {
    "a3-ultragpu-8g": "a3-ultragpu-8g carries H200 GPUs (nvidia-h200-141gb), not H100",
}

# Zones where A3 High/Mega were seen (accelerated-platforms pools; a Nov-2024 US scan). Non-US
# regions are unverified: override with cluster.h100_zones_override when your project has them.
KNOWN_H100_ZONES: frozenset[str] = frozenset(
    {
        "us-central1-a", "us-central1-b", "us-central1-c",
        "us-east4-a", "us-east4-b", "us-east4-c",
        "us-east5-a", "us-east5-b", "us-east5-c",
        "us-west1-a", "us-west1-b", "us-west1-c",
        "us-west4-a", "us-west4-b", "us-west4-c",
    }
)


def gpu_machine(machine_type: str) -> GpuMachine:
    """The H100 machine for a machine type; ValueError (with the allowed list) otherwise."""
    if machine_type in H100_MACHINES:
        return H100_MACHINES[machine_type]
    if machine_type in NOT_H100:
        raise ValueError(f"{NOT_H100[machine_type]}; use one of {', '.join(H100_MACHINES)}")
    raise ValueError(f"is not an H100 machine type; use one of {', '.join(H100_MACHINES)}")


def pool_name(machine: GpuMachine, provisioning: str) -> str:
    """accelerated-platforms naming: accelerator x count, then machine (gpu-h100x8-a3h8[-spot])."""
    suffix = {"on-demand": "", "reservation": "-res", "spot": "-spot", "flex-start": "-dws"}[provisioning]
    return f"gpu-{machine.gpu_family}x{machine.gpus}-{machine.short}{suffix}"
