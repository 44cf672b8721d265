"""CRDs GKE installs itself that have no published schema, as stand-ins for the test cluster.

GKE installs ``fqdnnetworkpolicies.networking.gke.io`` (``v1alpha1``) when the cluster enables FQDN
network policies (``enable_fqdn_network_policy``, what the external stack's cluster sets). Its
schema is not published, so the stand-in keeps every field (``x-kubernetes-preserve-unknown-fields``):
the API server stores the object as written and nothing here claims GKE would accept it. The
object's shape follows GKE's "Control Pod egress traffic using FQDN network policies" and is
pinned by tests/unit/test_builders_external.py.
"""

from __future__ import annotations

from typing import Any

FQDN_NETWORK_POLICY_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "fqdnnetworkpolicies.networking.gke.io"},
    "spec": {
        "group": "networking.gke.io",
        "scope": "Namespaced",
        "names": {"kind": "FQDNNetworkPolicy", "listKind": "FQDNNetworkPolicyList", "plural": "fqdnnetworkpolicies",
                  "singular": "fqdnnetworkpolicy"},
        "versions": [{"name": "v1alpha1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
            "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}],
    },
}


def gke_standin_crds() -> list[dict[str, Any]]:
    return [FQDN_NETWORK_POLICY_CRD]
