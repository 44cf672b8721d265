"""GpuNodePool: one H100 node pool (a3-highgpu / edge / mega) for model servers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import pulumi
import pulumi_gcp as gcp

from .builders import gke as b
from .config import GpuNodePoolConfig, StackConfig


@dataclass(frozen=True)
class GpuNodePoolArgs:
    config: StackConfig
    pool: GpuNodePoolConfig
    cluster: pulumi.Input[str]
    """The cluster's id (projects/P/locations/L/clusters/C)."""
    service_account: pulumi.Input[str]
    """The least-privilege node service account (NodeServiceAccount)."""
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)


class GpuNodePool(pulumi.ComponentResource):
    """An H100 pool named like `gpu-h100x8-a3h8[-spot|-dws|-res]`.

    The machine type alone decides the accelerator type and count (catalog/machines.py). The
    provisioning model picks how VMs are obtained:

    - `on-demand`: regular VMs (quota NVIDIA_H100_GPUS);
    - `spot`: Spot VMs (PREEMPTIBLE_NVIDIA_H100_GPUS), no reservations;
    - `flex-start`: DWS flex-start WITHOUT queued provisioning, so plain nodes serve a normal
      Deployment; VMs live at most `max_run_duration` (7 days), no reservations, no auto-repair;
    - `reservation`: a SPECIFIC_RESERVATION by name.

    Nodes carry the `nvidia.com/gpu=present:NoSchedule` taint and the
    `cloud.google.com/gke-accelerator` label, stream images (gcfs), use gVNIC and their local SSDs
    as ephemeral storage, and run as the node service account with GKE_METADATA.
    """

    node_pool: gcp.container.NodePool
    name: str

    def __init__(self, name: str, args: GpuNodePoolArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("inference-gateway:gcp:GpuNodePool", name, None, opts)
        settings = b.gpu_pool_settings(args.config, args.pool, args.service_account)
        self.name = settings["name"]
        self.node_pool = gcp.container.NodePool(
            f"{name}",
            project=args.config.project,
            cluster=args.cluster,
            **settings,
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)),
        )
        self.register_outputs({"name": self.node_pool.name})
