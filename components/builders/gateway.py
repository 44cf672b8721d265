"""Gateway and GCPGatewayPolicy manifests (pure).

TLS on GKE's regional gateway classes (GKE "Secure a Gateway",
https://cloud.google.com/kubernetes-engine/docs/how-to/secure-gateway, and "Gateway security",
https://cloud.google.com/kubernetes-engine/docs/concepts/gateway-security):

* a Kubernetes Secret (``kubernetes.io/tls``) through the Gateway API's own
  ``listeners[].tls.certificateRefs`` with ``mode: Terminate``;
* regional Certificate Manager certificates by name through the listener option
  ``tls.options["networking.gke.io/cert-manager-certs"]`` (comma-separated). The
  ``networking.gke.io/certmap`` *annotation* is the global classes' certificate-map mechanism:
  certificate maps are not supported on regional gateways, and GKE rejects a certmap together
  with certificateRefs, so it is never emitted here.
"""

from __future__ import annotations

from typing import Any

from ..config import GatewayConfig, ListenerConfig

GATEWAY_GROUP = "gateway.networking.k8s.io"
CERT_MANAGER_CERTS_OPTION = "networking.gke.io/cert-manager-certs"


def address_name(name_prefix: str, gateway: GatewayConfig) -> str | None:
    """The reserved regional address the gateway uses, if any."""
    if gateway.static_address:
        return gateway.static_address
    if gateway.create_address:
        return f"{name_prefix}-{gateway.name}-ip"
    return None


def listener(l: ListenerConfig) -> dict[str, Any]:
    out: dict[str, Any] = {"name": l.name, "port": l.port, "protocol": l.protocol}
    if l.hostname:
        out["hostname"] = l.hostname
    if l.tls is not None:
        tls: dict[str, Any] = {"mode": "Terminate"}
        if l.tls.certificate_secret:
            tls["certificateRefs"] = [{"group": "", "kind": "Secret", "name": l.tls.certificate_secret}]
        else:
            tls["options"] = {CERT_MANAGER_CERTS_OPTION: ",".join(l.tls.certificate_manager_certificates)}
        out["tls"] = tls
    out["allowedRoutes"] = {"namespaces": {"from": "Same"}}
    return out


def gateway_manifest(gateway: GatewayConfig, namespace: str, address: str | None, labels: dict[str, str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "gatewayClassName": gateway.class_,
        "listeners": [listener(l) for l in gateway.listeners],
    }
    if address:
        spec["addresses"] = [{"type": "NamedAddress", "value": address}]
    return {
        "apiVersion": f"{GATEWAY_GROUP}/v1",
        "kind": "Gateway",
        "metadata": {"name": gateway.name, "namespace": namespace, "labels": {**(labels or {}), "inference-gateway/gateway": gateway.name}},
        "spec": spec,
    }


def gateway_policy_manifest(gateway: GatewayConfig, namespace: str, labels: dict[str, str] | None = None) -> dict[str, Any] | None:
    """GCPGatewayPolicy with allowGlobalAccess for internal gateways that ask for it, else None."""
    if not (gateway.internal and gateway.global_access):
        return None
    return {
        "apiVersion": "networking.gke.io/v1",
        "kind": "GCPGatewayPolicy",
        "metadata": {"name": f"{gateway.name}-policy", "namespace": namespace, "labels": dict(labels or {})},
        "spec": {
            "default": {"allowGlobalAccess": True},
            "targetRef": {"group": GATEWAY_GROUP, "kind": "Gateway", "name": gateway.name},
        },
    }


def gateway_urls(gateway: GatewayConfig, ip: str) -> dict[str, str]:
    """Base URL per listener: https://<hostname or ip>[:port] / http://..."""
    out = {}
    for l in gateway.listeners:
        scheme = l.protocol.lower()
        host = l.hostname or ip
        default = 443 if scheme == "https" else 80
        out[l.name] = f"{scheme}://{host}" + ("" if l.port == default else f":{l.port}")
    return out
