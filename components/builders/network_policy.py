"""NetworkPolicies per pool (pure): who may reach model servers and pickers, and where they may go.

GKE enforces NetworkPolicy with Dataplane V2 (``datapath_provider: ADVANCED_DATAPATH``, which
the cluster sets). Every selected pod is default-deny in both directions except for:

Model servers (pods ``app: <server>``)
  - in: the gateway's proxies (the proxy-only subnets: Envoy-based regional load balancers send
    from there) on the serving ports; Google Cloud health checks (35.191.0.0/16,
    130.211.0.0/22) on the health port; the pool's pickers (metrics scrape) and Managed
    Prometheus collectors (namespace ``gmp-system``) on the metrics port.
  - out: DNS; HTTPS to the internet outside private ranges when the server downloads from
    Hugging Face (vLLM, LoRA adapters); with a Cloud Storage bucket also the GKE metadata
    server for Workload Identity tokens (``METADATA_SERVER``).
Pickers (pods ``app: <pool>-epp``)
  - in: the gateway's proxies on the ext_proc port; health checks on the gRPC health port;
    Managed Prometheus collectors on the metrics port.
  - out: DNS; the Kubernetes API server (it watches pods, pools and routing objects); the pool's
    model servers on their metrics port.
"""

from __future__ import annotations

from typing import Any, Iterable

HEALTH_CHECK_RANGES = ("35.191.0.0/16", "130.211.0.0/22")
"""Google Cloud health-check probe sources. cloud.google.com/load-balancing/docs/firewall-rules
lists them for the regional external and internal Application Load Balancers (the two GKE
Gateway classes here), next to the proxy-only subnet their Envoy proxies send traffic from."""
PRIVATE_RANGES = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
METADATA_SERVER = (("169.254.169.254/32", 80), ("169.254.169.252/32", 988))
"""Where a pod reaches the GKE metadata server (Workload Identity tokens) as NetworkPolicy sees
it: 169.254.169.254:80 with Dataplane V2 (the clusters this stack creates), 169.254.169.252:988
with the Calico enforcement of GKE 1.21+ (a cluster brought with ``cluster.existing``). The GKE
network-policy page was not in the stored documentation here; these pairs are as public GKE
NetworkPolicies and their tests write them (TCP 80 and 8080 / 987 and 988 in some)."""
GMP_NAMESPACE = "gmp-system"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
"""Set by the API server on every namespace, so a policy can select a namespace by name."""


def _ports(numbers: Iterable[int], protocol: str = "TCP") -> list[dict[str, Any]]:
    return [{"protocol": protocol, "port": n} for n in sorted(set(numbers))]


def _cidrs(cidrs: Iterable[str]) -> list[dict[str, Any]]:
    return [{"ipBlock": {"cidr": c}} for c in cidrs]


def _gmp_collectors() -> dict[str, Any]:
    return {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: GMP_NAMESPACE}}}


def dns_egress() -> dict[str, Any]:
    """kube-dns (GKE: kube-system) over UDP and TCP 53."""
    return {
        "to": [{"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: "kube-system"}}, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
    }


def internet_https_egress() -> dict[str, Any]:
    """HTTPS anywhere but the private ranges (Hugging Face, Cloud Storage's public endpoints)."""
    return {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": list(PRIVATE_RANGES)}}], "ports": _ports([443])}


def _policy(name: str, namespace: str, pod_labels: dict[str, str], ingress: list, egress: list) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(pod_labels)},
        "spec": {
            "podSelector": {"matchLabels": dict(pod_labels)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": ingress,
            "egress": egress,
        },
    }


def model_server_policy(
    server_name: str,
    namespace: str,
    pod_labels: dict[str, str],
    serving_ports: Iterable[int],
    health_port: int,
    metrics_port: int | None,
    proxy_cidrs: Iterable[str],
    picker_labels: list[dict[str, str]],
    downloads_from_internet: bool,
    reads_bucket: bool,
) -> dict[str, Any]:
    ingress: list[dict[str, Any]] = [
        {"from": _cidrs(proxy_cidrs), "ports": _ports(serving_ports)},
        {"from": _cidrs(HEALTH_CHECK_RANGES), "ports": _ports([health_port])},
    ]
    if metrics_port is not None:
        sources = [{"podSelector": {"matchLabels": dict(labels)}} for labels in picker_labels] + [_gmp_collectors()]
        ingress.append({"from": sources, "ports": _ports([metrics_port])})
    egress: list[dict[str, Any]] = [dns_egress()]
    if downloads_from_internet or reads_bucket:
        egress.append(internet_https_egress())
    if reads_bucket:
        egress += [{"to": _cidrs([cidr]), "ports": _ports([port])} for cidr, port in METADATA_SERVER]
    return _policy(f"{server_name}-model-server", namespace, pod_labels, ingress, egress)


def picker_policy(
    picker_name: str,
    namespace: str,
    pod_labels: dict[str, str],
    ext_proc_port: int,
    health_port: int,
    metrics_port: int,
    proxy_cidrs: Iterable[str],
    api_server_cidrs: list[Any],
    model_server_labels: dict[str, str],
    model_server_metrics_port: int | None,
) -> dict[str, Any]:
    """``api_server_cidrs``: the control plane's addresses (the private endpoint range, or the
    public endpoint as a Pulumi Output known once the cluster exists)."""
    ingress = [
        {"from": _cidrs(proxy_cidrs), "ports": _ports([ext_proc_port])},
        {"from": _cidrs(HEALTH_CHECK_RANGES), "ports": _ports([health_port])},
        {"from": [_gmp_collectors()], "ports": _ports([metrics_port])},
    ]
    egress: list[dict[str, Any]] = [
        dns_egress(),
        {"to": _cidrs(api_server_cidrs), "ports": _ports([443])},
    ]
    if model_server_metrics_port is not None:
        egress.append({"to": [{"podSelector": {"matchLabels": dict(model_server_labels)}}], "ports": _ports([model_server_metrics_port])})
    return _policy(picker_name, namespace, pod_labels, ingress, egress)
