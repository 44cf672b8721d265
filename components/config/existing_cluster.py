"""Bring your own cluster: `cluster.existing` and the rules that come with it.

With `cluster.existing` the stack creates no Google APIs, VPC, subnets, GKE cluster or node
pools: it connects to the cluster through a kubeconfig and creates only the serving layer (the
CRDs the cluster lacks, model servers, InferencePools with their pickers, routing objects,
gateways with their routes and GKE policies, observability). On a GKE cluster (`gke: true`,
the default) the GCP objects that belong to that layer are still created when configured: the
picker image build, Model Armor templates, reserved gateway addresses, the dashboard and
alerts, Workload Identity for a model bucket. On any other cluster (`gke: false`) every
section that needs GKE is an error naming what needs it; the per-pool HealthCheckPolicy and
GCPBackendPolicy (they configure GKE's load balancer) are left out.

The kubeconfig is a path (state records the path, never the file) or the secret config value
`kubeconfig` (its contents, encrypted in state like every Pulumi secret).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from ._base import Strict

if TYPE_CHECKING:
    from .stack import StackConfig

InstallableCrd = Literal["InferencePool", "InferenceObjective", "InferenceModelRewrite"]

CLUSTER_FIELDS_FOR_EXISTING = frozenset({"existing", "name", "min_master_version"})
"""`cluster` keys that still mean something with an existing cluster: its name (dashboard and
alert filters) and its version (which CRDs GKE already installed)."""
NETWORK_FIELDS_FOR_EXISTING = frozenset({"existing_network", "existing_subnet", "proxy_only_subnets"})
"""`network` keys that describe the existing cluster's network: its VPC and node subnet (an
internal gateway's reserved address) and its proxy-only subnets (their CIDRs are where the
gateway's proxies connect from, admitted by the NetworkPolicies)."""
NODE_POOL_FIELDS_FOR_EXISTING = frozenset({"name", "machine_type"})
"""What describes an existing GPU node pool: its name (`model_servers[].node_pool`) and machine
type (accelerator for the nodeSelector, GPU count for tensor parallelism)."""


class ExistingClusterConfig(Strict):
    """A cluster the stack deploys onto but does not create."""

    kubeconfig: str | None = None
    """Path to a kubeconfig file (`~/` allowed), read by the Kubernetes provider when it runs;
    state records only the path. Omit it to use the secret config value `kubeconfig` instead:
    `pulumi config set --secret kubeconfig < ~/.kube/config`."""
    context: str | None = None
    """Kubeconfig context to use; default: the file's current-context."""
    gke: bool = True
    """A GKE cluster (Gateway API enabled, GKE's Gateway classes and policies, Managed
    Prometheus). false: any conformant Kubernetes cluster, where only the Kubernetes objects
    that need no GKE controller are created."""
    installed_crds: list[InstallableCrd] = []
    """CRDs the stack would install that the cluster already has (e.g. InferencePool from an
    earlier Gateway API Inference Extension install): the stack leaves them alone."""


def existing_cluster_rules(cfg: StackConfig) -> list[str]:
    """Problems with a stack that targets an existing cluster; [] without `cluster.existing`."""
    existing = cfg.cluster.existing
    if existing is None:
        return []
    problems: list[str] = []
    add = problems.append
    not_managed = "with cluster.existing the stack does not create or change the cluster"
    for key in sorted(cfg.cluster.model_fields_set - CLUSTER_FIELDS_FOR_EXISTING):
        add(f"cluster.{key}: configures a cluster the stack creates; {not_managed} (remove it)")
    for key in sorted(cfg.network.model_fields_set - NETWORK_FIELDS_FOR_EXISTING):
        add(
            f"network.{key}: the stack creates no network for an existing cluster (remove it); only "
            "network.existing_network, network.existing_subnet and network.proxy_only_subnets apply, describing "
            "the cluster's VPC, node subnet and proxy-only subnets"
        )
    if "apis" in cfg.model_fields_set:
        add("apis: the stack enables no Google APIs for an existing cluster (remove it); the cluster's project manages them")
    for i, pool in enumerate(cfg.node_pools):
        for key in sorted(pool.model_fields_set - NODE_POOL_FIELDS_FOR_EXISTING):
            add(
                f"node_pools[{i}].{key}: configures a node pool the stack creates; {not_managed}, so "
                "node_pools only describes its GPU pools by name and machine_type"
            )
    if existing.gke:
        obs = cfg.observability
        if cfg.cluster.name is None and (obs.dashboard or obs.alerts):
            add(
                "cluster.name: name the existing GKE cluster; the dashboard and alerts select its metrics by "
                "cluster name (or set observability.dashboard and observability.alerts to false)"
            )
        return problems
    problems.extend(_needs_gke(cfg))
    return problems


def _needs_gke(cfg: StackConfig) -> list[str]:
    """Every configured object that only GKE can serve, on a cluster with `gke: false`."""
    problems: list[str] = []
    add = problems.append
    why = "needs GKE (cluster.existing.gke is false)"
    for i, g in enumerate(cfg.gateways):
        add(
            f"gateways[{i}]: {g.name!r} is a GKE Gateway (class {g.class_}), which {why}; remove it and route to the "
            "InferencePools with your cluster's own Gateway API implementation"
        )
    if cfg.model_armor is not None:
        add(f"model_armor: the Model Armor traffic extension (GCPTrafficExtension on a GKE gateway) {why}; remove it")
    obs = cfg.observability
    for key, what in (
        ("pod_monitoring", "PodMonitoring (Google Cloud Managed Prometheus)"),
        ("dashboard", "the Cloud Monitoring dashboard (Managed Prometheus metrics)"),
        ("alerts", "the alert policies (Managed Prometheus metrics)"),
    ):
        if getattr(obs, key):
            add(f"observability.{key}: {what} {why}; set it to false")
    if cfg.node_pools:
        add(
            f"node_pools: selects GKE node pools by the cloud.google.com/gke-accelerator label, which {why}; remove it: "
            "model servers request nvidia.com/gpu and the scheduler places them on GPU nodes"
        )
    for i, s in enumerate(cfg.model_servers):
        if s.gcs_bucket:
            add(f"model_servers[{i}].gcs_bucket: reading a bucket through Workload Identity {why}; remove it")
    if cfg.picker_image.image is None:
        add(
            "picker_image.image: is required on a non-GKE cluster; push the picker image (picker/Dockerfile) to a "
            "registry the cluster can pull from and give its reference"
        )
    return problems
