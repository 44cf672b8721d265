"""Autoscaling: a KEDA ScaledObject per autoscaled model server, and what KEDA needs (pure
manifests in builders/autoscaling.py; the policy and its defaults in config/autoscaling.py).

Creates, when any model server autoscales: KEDA's read access to Managed Prometheus
(roles/monitoring.viewer for its operator's Workload Identity principal), a TriggerAuthentication
in the stack's namespace, one ScaledObject per server (after its Deployment), and, with
`keda.install: true`, KEDA itself (its Helm chart, in its own namespace: a cluster add-on).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s

from .builders import autoscaling as b
from .config import StackConfig
from .config.autoscaling import effective_autoscaling

LABELS = {"app.kubernetes.io/managed-by": "inference-gateway"}


@dataclass
class AutoscalingArgs:
    stack: StackConfig
    deployments: dict[str, pulumi.Resource] = field(default_factory=dict)
    """Model-server Deployments by server name (each ScaledObject waits for its Deployment)."""


def autoscaled_servers(cfg: StackConfig) -> list[str]:
    return [s.name for s in cfg.model_servers if effective_autoscaling(s) is not None]


class Autoscaling(pulumi.ComponentResource):
    def __init__(self, name: str, args: AutoscalingArgs, opts: pulumi.ResourceOptions | None = None):
        """Kubernetes objects use the parent's Kubernetes provider; the IAM grant the default GCP one."""
        super().__init__("inference-gateway:serving:Autoscaling", name, None, opts)
        cfg = args.stack
        ns = cfg.namespace
        kopts = pulumi.ResourceOptions(parent=self)
        deps: list[pulumi.Resource] = []
        self.keda = None
        if cfg.keda.install:
            r = b.keda_release(cfg.keda)
            self.keda = k8s.helm.v3.Release(
                f"{name}-keda", name=r["name"], chart=r["chart"], version=r["version"], namespace=r["namespace"],
                create_namespace=r["create_namespace"], repository_opts=r["repository_opts"], opts=kopts,
            )
            deps.append(self.keda)
        number = gcp.organizations.get_project_output(project_id=cfg.project, opts=pulumi.InvokeOptions(parent=self)).number
        self.metrics_reader = gcp.projects.IAMMember(
            f"{name}-keda-monitoring-viewer",
            project=cfg.project,
            role=b.MONITORING_VIEWER,
            member=number.apply(lambda n: b.keda_operator_member(cfg.project, str(n), cfg.keda)),
            opts=pulumi.ResourceOptions(parent=self),
        )
        auth = b.trigger_authentication(ns)
        self.trigger_authentication = k8s.apiextensions.CustomResource(
            f"{name}-trigger-auth", api_version=auth["apiVersion"], kind=auth["kind"], metadata=auth["metadata"],
            spec=auth["spec"], opts=pulumi.ResourceOptions.merge(kopts, pulumi.ResourceOptions(depends_on=deps)),
        )
        self.scaled_objects: dict[str, k8s.apiextensions.CustomResource] = {}
        for server in cfg.model_servers:
            policy = effective_autoscaling(server)
            if policy is None:
                continue
            pools = [p.name for p in cfg.pools if p.model_server == server.name]
            so = b.scaled_object(server.name, policy, pools, project=cfg.project, cluster=cfg.cluster_name,
                                 namespace=ns, labels=LABELS)
            after = [self.trigger_authentication, self.metrics_reader, *deps]
            if server.name in args.deployments:
                after.append(args.deployments[server.name])
            self.scaled_objects[server.name] = k8s.apiextensions.CustomResource(
                f"{name}-{server.name}", api_version=so["apiVersion"], kind=so["kind"], metadata=so["metadata"],
                spec=so["spec"], opts=pulumi.ResourceOptions.merge(kopts, pulumi.ResourceOptions(depends_on=after)),
            )
        self.register_outputs({"scaledObjects": list(self.scaled_objects)})
