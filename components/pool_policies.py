"""PoolPolicies: the GKE load-balancer policies of one InferencePool.

HealthCheckPolicy (the runtime's HTTP health path on its fixed port, interval/timeout from
config) and GCPBackendPolicy (backend timeout, default 300 s as the GIE chart, and request
logging with a sample rate), both targeting the InferencePool.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from .builders import policies
from .config import InferencePoolConfig


@dataclass
class PoolPoliciesArgs:
    pool: InferencePoolConfig
    namespace: str
    probe: policies.HealthProbe
    labels: dict[str, str]
    depends_on: list[pulumi.Resource] = field(default_factory=list)
    """The InferencePool: policies target it, so they are applied after it exists."""


class PoolPolicies(pulumi.ComponentResource):
    def __init__(self, name: str, args: PoolPoliciesArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("inference-gateway:gateway:PoolPolicies", name, None, opts)
        child = pulumi.ResourceOptions(parent=self, depends_on=args.depends_on)
        p = args.pool
        hc = policies.health_check_policy(p.name, args.namespace, args.probe, p.backend_policy, args.labels)
        bp = policies.backend_policy(p.name, args.namespace, p.backend_policy, args.labels)
        self.health_check = k8s.apiextensions.CustomResource(
            f"{name}-health-check", api_version=hc["apiVersion"], kind=hc["kind"], metadata=hc["metadata"], spec=hc["spec"], opts=child
        )
        self.backend_policy = k8s.apiextensions.CustomResource(
            f"{name}-backend-policy", api_version=bp["apiVersion"], kind=bp["kind"], metadata=bp["metadata"], spec=bp["spec"], opts=child
        )
        self.register_outputs({})
