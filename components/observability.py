"""Observability: metrics access (seed 001 step 5), PodMonitoring, dashboard, alert policies."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s

from .builders import dashboard as dash
from .builders import metrics_access as ma
from .config import StackConfig

PICKER_METRICS_PORT = 9090


def _kwargs(manifest: dict) -> dict:
    """A Kubernetes-native dict -> the typed resource's keyword arguments (camelCase -> snake)."""
    import re

    return {re.sub(r"(?<!^)(?=[A-Z])", "_", k).lower(): v for k, v in manifest.items()}
"""The picker's metrics port (picker/endpoint_picker/main.py --metrics-port, GIE's 9090)."""


@dataclass(frozen=True)
class ScrapeTarget:
    """Pods to scrape: a name for the PodMonitoring, their labels, port and path."""

    name: str
    match_labels: dict[str, str]
    port: int | str
    path: str = "/metrics"


@dataclass
class ObservabilityArgs:
    stack: StackConfig
    model_servers: list[ScrapeTarget] = field(default_factory=list)
    pickers: list[ScrapeTarget] = field(default_factory=list)


class Observability(pulumi.ComponentResource):
    dashboard: gcp.monitoring.Dashboard | None

    def __init__(self, name: str, args: ObservabilityArgs, k8s_opts: pulumi.ResourceOptions, opts: pulumi.ResourceOptions | None = None):
        """`k8s_opts` carries the cluster's Kubernetes provider; GCP resources use the default."""
        super().__init__("inference-gateway:observability:Observability", name, None, opts)
        cfg, obs = args.stack, args.stack.observability
        ns = cfg.namespace
        child = pulumi.ResourceOptions(parent=self)
        kopts = pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(parent=self))

        # -- metrics access: names exactly as seed 001 step 5 -----------------------------------
        self.metrics_reader_role = k8s.rbac.v1.ClusterRole(f"{name}-metrics-reader", **_kwargs(ma.metrics_reader_role()), opts=kopts)
        self.metrics_reader_sa = k8s.core.v1.ServiceAccount(f"{name}-metrics-reader-sa", **_kwargs(ma.metrics_reader_service_account(ns)), opts=kopts)
        self.metrics_reader_binding = k8s.rbac.v1.ClusterRoleBinding(
            f"{name}-metrics-reader-binding", **_kwargs(ma.metrics_reader_binding(ns)),
            opts=pulumi.ResourceOptions.merge(kopts, pulumi.ResourceOptions(depends_on=[self.metrics_reader_role, self.metrics_reader_sa])),
        )
        self.metrics_reader_secret = k8s.core.v1.Secret(
            f"{name}-metrics-reader-token", **_kwargs(ma.metrics_reader_token_secret(ns)),
            opts=pulumi.ResourceOptions.merge(kopts, pulumi.ResourceOptions(depends_on=[self.metrics_reader_sa])),
        )
        self.secret_read_role = k8s.rbac.v1.ClusterRole(f"{name}-metrics-secret-read", **_kwargs(ma.secret_read_role()), opts=kopts)
        self.secret_read_binding = k8s.rbac.v1.ClusterRoleBinding(
            f"{name}-metrics-secret-read-binding", **_kwargs(ma.secret_read_binding()),
            opts=pulumi.ResourceOptions.merge(kopts, pulumi.ResourceOptions(depends_on=[self.secret_read_role])),
        )

        # -- PodMonitoring ------------------------------------------------------------------------
        self.pod_monitorings: dict[str, k8s.apiextensions.CustomResource] = {}
        if obs.pod_monitoring:
            pm_opts = pulumi.ResourceOptions.merge(kopts, pulumi.ResourceOptions(depends_on=[self.metrics_reader_secret, self.secret_read_binding]))
            for t in [*args.model_servers, *args.pickers]:
                m = ma.pod_monitoring(t.name, ns, t.match_labels, t.port, t.path, obs.scrape_interval)
                self.pod_monitorings[t.name] = k8s.apiextensions.CustomResource(
                    f"{name}-{t.name}", api_version=m["apiVersion"], kind=m["kind"], metadata=m["metadata"], spec=m["spec"], opts=pm_opts
                )

        scope = dash.Scope(cluster=cfg.cluster_name, namespace=ns)

        # -- dashboard ------------------------------------------------------------------------------
        self.dashboard = None
        if obs.dashboard:
            self.dashboard = gcp.monitoring.Dashboard(
                f"{name}-dashboard",
                project=cfg.project,
                dashboard_json=dash.dashboard_json(f"Inference gateway ({cfg.name_prefix})", scope),
                opts=child,
            )

        # -- alerts ---------------------------------------------------------------------------------
        channels: list[pulumi.Input[str]] = list(obs.notification_channels)
        self.notification_channels = []
        for i, email in enumerate(obs.notification_emails):
            ch = gcp.monitoring.NotificationChannel(
                f"{name}-email-{i}",
                project=cfg.project,
                display_name=f"{cfg.name_prefix} inference alerts: {email}",
                type="email",
                labels={"email_address": email},
                opts=child,
            )
            self.notification_channels.append(ch)
            channels.append(ch.name)
        self.alert_policies: dict[str, gcp.monitoring.AlertPolicy] = {}
        if obs.alerts:
            for spec in dash.alerts(
                scope,
                queue_threshold=obs.queue_depth_threshold,
                kv_threshold=obs.kv_cache_threshold,
                saturation_minutes=obs.saturation_alert_minutes,
                picker_minutes=obs.picker_unavailable_minutes,
            ):
                self.alert_policies[spec.name] = gcp.monitoring.AlertPolicy(
                    f"{name}-{spec.name}",
                    project=cfg.project,
                    display_name=f"{spec.display_name} ({cfg.name_prefix})",
                    combiner="OR",
                    severity="WARNING",
                    conditions=[
                        {
                            "display_name": spec.display_name,
                            "condition_prometheus_query_language": {
                                "query": spec.query,
                                "duration": f"{spec.duration_seconds}s",
                                "evaluation_interval": "60s",
                            },
                        }
                    ],
                    documentation={"content": spec.documentation, "mime_type": "text/markdown"},
                    notification_channels=channels,
                    user_labels={"stack": cfg.name_prefix},
                    opts=child,
                )
        self.register_outputs({"dashboard": self.dashboard.id if self.dashboard else None})
