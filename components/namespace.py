"""StackNamespace: the namespace every Kubernetes object of the stack lives in.

Created by the stack (``create_namespace``, default true) with Pod Security admission labels:
``enforce: restricted`` when every workload the stack renders meets the restricted profile,
else ``baseline`` with the reason as an annotation; ``warn``/``audit`` are always restricted.
Every other Kubernetes object waits for it: ``after_namespace`` is a transformation the platform
puts on the Kubernetes options, which children inherit.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from .builders import pod_security as ps
from .catalog.hardening import server_user
from .config import StackConfig

NAMESPACE_TYPE = "kubernetes:core/v1:Namespace"


def pod_security_exceptions(config: StackConfig) -> dict[str, str]:
    """Workloads that cannot meet ``restricted``, with why (today: a custom image run as root)."""
    return {
        f"model server {s.name}": "runtime_overrides.run_as_user is 0 (the image needs root)"
        for s in config.model_servers
        if server_user(s).uid == 0
    }


class StackNamespace(pulumi.ComponentResource):
    def __init__(self, name: str, config: StackConfig, opts: pulumi.ResourceOptions | None = None):
        super().__init__("inference-gateway:platform:StackNamespace", name, None, opts)
        self.name = config.namespace
        self.level, self.reason = ps.pod_security_level(pod_security_exceptions(config))
        self.namespace: k8s.core.v1.Namespace | None = None
        if config.create_namespace:
            manifest = ps.namespace(config.namespace, self.level, self.reason, config.labels)
            self.namespace = k8s.core.v1.Namespace(
                config.namespace, metadata=manifest["metadata"], opts=pulumi.ResourceOptions(parent=self)
            )
        self.register_outputs({"name": self.name, "podSecurity": self.level})

    def after_namespace(self) -> list[pulumi.ResourceTransformation]:
        """A transformation adding ``depends_on`` the namespace to every Kubernetes resource."""
        ns = self.namespace
        if ns is None:
            return []

        def transform(args: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:
            if not args.type_.startswith("kubernetes:") or args.type_ == NAMESPACE_TYPE:
                return None
            # merge() appends depends_on lists: the resource keeps its own dependencies.
            return pulumi.ResourceTransformationResult(
                args.props, pulumi.ResourceOptions.merge(args.opts, pulumi.ResourceOptions(depends_on=[ns]))
            )

        return [transform]
