"""NetworkPolicies: one per model server and one per pool's picker (builders/network_policy.py).

The proxy-only subnets are the stack's (``network.proxy_only_subnets``, their ``cidr`` also for
an adopted subnet). The API server the pickers call is the control plane's private range on
private clusters, else the public endpoint of the cluster the stack creates; on an existing
cluster (``cluster.existing``) its address is unknown, so pickers may reach TCP 443 anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from .builders import inference_pool as pool_builders
from .builders import network_policy as np
from .builders.external_model import egress_labels
from .builders.model_server import pod_labels
from .catalog.runtimes import resolve_preset
from .config import StackConfig

ANYWHERE = "0.0.0.0/0"


@dataclass(frozen=True)
class NetworkPoliciesArgs:
    config: StackConfig
    api_server_cidrs: list[Any] = field(default_factory=lambda: [ANYWHERE])
    """CIDRs of the Kubernetes API server (values or Outputs)."""


def api_server_cidrs(config: StackConfig, cluster: Any | None) -> list[Any]:
    """The control plane's private range on private clusters; the public endpoint of a cluster
    the stack creates; anywhere for an existing cluster (its address is not known here)."""
    if cluster is None:
        return [ANYWHERE]
    if config.cluster.private_nodes:
        return [config.cluster.master_cidr]
    return [pulumi.Output.from_input(cluster.endpoint).apply(lambda ip: f"{ip}/32")]


def downloads_from_internet(server) -> bool:
    """vLLM fetches weights (and LoRA adapters) from Hugging Face unless they come from a bucket;
    other runtimes read /mnt/models only."""
    return server.runtime == "vllm" and (not server.gcs_bucket or server.lora_enabled)


def policies(args: NetworkPoliciesArgs) -> list[dict[str, Any]]:
    cfg = args.config
    proxy_cidrs = [p.cidr for p in cfg.proxy_only_subnets]
    out: list[dict[str, Any]] = []
    for server in cfg.model_servers:
        preset = resolve_preset(server)
        pools = [p for p in cfg.pools if p.model_server == server.name]
        ports = [preset.target_port, preset.port]
        metrics_port = preset.port if preset.metrics_path else None
        out.append(
            np.model_server_policy(
                server.name, cfg.namespace, pod_labels(server.name), ports, preset.port, metrics_port, proxy_cidrs,
                [pool_builders.picker_labels(p.name) for p in pools],
                downloads_from_internet(server), bool(server.gcs_bucket),
            )
        )
    for pool in cfg.pools:
        if pool.model_server is None:  # an external model's egress proxy: no metrics to scrape
            # (its own NetworkPolicy and FQDNNetworkPolicy come with it: components/external_model.py)
            server_labels, metrics_port = egress_labels(pool.name), None
        else:
            server = cfg.model_server(pool.model_server)
            preset = resolve_preset(server)
            server_labels, metrics_port = pod_labels(server.name), preset.port if preset.picker_signals else None
        out.append(
            np.picker_policy(
                pool_builders.picker_name(pool.name), cfg.namespace, pool_builders.picker_labels(pool.name),
                pool_builders.GRPC_PORT, pool_builders.HEALTH_PORT, pool_builders.METRICS_PORT, proxy_cidrs,
                args.api_server_cidrs, server_labels, metrics_port,
            )
        )
    return out


class NetworkPolicies(pulumi.ComponentResource):
    def __init__(self, name: str, args: NetworkPoliciesArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("inference-gateway:serving:NetworkPolicies", name, None, opts)
        self.policies = [
            k8s.networking.v1.NetworkPolicy(
                p["metadata"]["name"], metadata=p["metadata"], spec=p["spec"], opts=pulumi.ResourceOptions(parent=self)
            )
            for p in policies(args)
        ]
        self.register_outputs({"names": [p["metadata"]["name"] for p in policies(args)]})
