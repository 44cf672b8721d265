"""A broken variant of every custom kind the stacks render, refused by the real API server with
the message its CRD declares (a CEL rule where the CRD has one, else the OpenAPI schema), next
to the same object unbroken, which the server accepts. Each case also records whether our
offline validator (tests/crd_schema.py: jsonschema + cel-python) catches the break, so the
tier shows exactly what only the real server enforces."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable

import pytest

from igw.kube import ApiError, KubeClient
from igw.stackfile import available_stacks
from tests.crd_schema import crd_errors

from .manifests import stack_manifests, upstream_crds


@dataclass(frozen=True)
class Break:
    kind: str
    what: str
    mutate: Callable[[dict[str, Any]], None]
    field: str               # the server's cause field ("" when the server names no field)
    message: str             # what the server says about it (the CRD's CEL message or schema wording)
    offline_catches: bool    # tests/crd_schema.crd_errors rejects it too
    status: int = 422        # 500: server-side apply fails to build its typed patch (upstream quirk)


def _dup_first(items: list) -> None:
    items.append(copy.deepcopy(items[0]))


def _pool_dup_port(o):
    _dup_first(o["spec"]["targetPorts"])


def _pool_epp_without_port(o):
    o["spec"]["endpointPickerRef"].pop("port")


def _objective_without_pool(o):
    o["spec"].pop("poolRef")


def _rewrite_zero_weight(o):
    o["spec"]["rules"][0]["targets"][0]["weight"] = 0


def _gateway_http_listener_with_tls(o):
    o["spec"]["listeners"][0].update(protocol="HTTP", tls={"mode": "Terminate", "certificateRefs": [{"name": "cert"}]})


def _route_service_without_port(o):
    o["spec"]["rules"][0]["backendRefs"][0] = {"group": "", "kind": "Service", "name": "some-service"}


def _healthcheck_timeout_over_interval(o):
    o["spec"]["default"].update(checkIntervalSec=2, timeoutSec=3)


def _backend_policy_sample_rate(o):
    o["spec"]["default"].setdefault("logging", {})["sampleRate"] = 2_000_000


def _gateway_policy_without_kind(o):
    o["spec"]["targetRef"].pop("kind")


def _traffic_extension_timeout(o):
    o["spec"]["extensionChains"][0]["extensions"][0]["timeout"] = "20s"


def _podmonitoring_port_zero(o):
    o["spec"]["endpoints"][0]["port"] = 0


def _scaled_object_negative_minimum(o):
    o["spec"]["minReplicaCount"] = -1


def _trigger_auth_gke_provider(o):
    o["spec"]["podIdentity"]["provider"] = "gke"          # the platform's name, not KEDA's ("gcp")


def _secret_provider_class_numeric_provider(o):
    o["spec"]["provider"] = 7


def _route_header_set_twice(o):
    modifier = next(f["requestHeaderModifier"] for r in o["spec"]["rules"] for f in r.get("filters") or []
                    if f["type"] == "RequestHeaderModifier")
    _dup_first(modifier["set"])


def _objective_uppercase_name(o):
    o["metadata"]["name"] = "Food_Review"


def _pool_long_label(o):
    o["metadata"]["labels"] = {"app": "x" * 64}


BREAKS = [
    Break("InferencePool", "duplicate targetPorts", _pool_dup_port,
          "spec.targetPorts", "port number must be unique", True),
    Break("InferencePool", "endpointPickerRef without a port", _pool_epp_without_port,
          "spec.endpointPickerRef", "port is required when kind is 'Service' or unspecified (defaults to 'Service')", True),
    Break("InferenceObjective", "no poolRef (no CEL rules: schema)", _objective_without_pool,
          "spec.poolRef", "Required value", True),
    Break("InferenceModelRewrite", "target weight 0 (no CEL rules: schema)", _rewrite_zero_weight,
          "spec.rules[0].targets[0].weight", "should be greater than or equal to 1", True),
    Break("Gateway", "an HTTP listener with tls", _gateway_http_listener_with_tls,
          "spec.listeners", "tls must not be specified for protocols ['HTTP', 'TCP', 'UDP']", True),
    Break("HTTPRoute", "Service backendRef without a port", _route_service_without_port,
          "spec.rules[0].backendRefs[0]", "Must have port for Service reference", True),
    Break("HealthCheckPolicy", "timeoutSec over checkIntervalSec", _healthcheck_timeout_over_interval,
          "spec.default", "timeOutSec cannot exceed checkIntervalSec", True),
    Break("GCPBackendPolicy", "logging.sampleRate over 1e6 (no CEL rules: schema)", _backend_policy_sample_rate,
          "spec.default.logging.sampleRate", "should be less than or equal to 1000000", True),
    Break("GCPGatewayPolicy", "targetRef without kind (no CEL rules: schema)", _gateway_policy_without_kind,
          "spec.targetRef.kind", "Required value", True),
    Break("GCPTrafficExtension", "extension timeout 20s", _traffic_extension_timeout,
          "spec.extensionChains[0].extensions[0]", "timeout must be between 10-10000 milliseconds", True),
    Break("PodMonitoring", "endpoint port 0", _podmonitoring_port_zero,
          "spec.endpoints[0].port", "Port is required", True),
    Break("ScaledObject", "minReplicaCount -1 (no CEL rules: schema)", _scaled_object_negative_minimum,
          "spec.minReplicaCount", "should be greater than or equal to 0", True),
    Break("TriggerAuthentication", "podIdentity provider 'gke' (no CEL rules: schema)", _trigger_auth_gke_provider,
          "spec.podIdentity.provider", 'Unsupported value: "gke"', True),
    Break("SecretProviderClass", "provider not a string (server-side apply cannot type the patch)",
          _secret_provider_class_numeric_provider, "", ".spec.provider: expected string, got", True, 500),
    # What only the server catches: list-map keys, object metadata.
    Break("HTTPRoute", "a header set twice (a list-map keyed by name)", _route_header_set_twice,
          "", ".spec.rules[0].filters[1].requestHeaderModifier.set: duplicate entries for key [name=", False, 500),
    Break("InferenceObjective", "a name that is not a DNS-1123 subdomain", _objective_uppercase_name,
          "metadata.name", "a lowercase RFC 1123 subdomain must consist of", False),
    Break("InferencePool", "a label value over 63 characters", _pool_long_label,
          "metadata.labels", "must be no more than 63 bytes", False),
]


def rendered_of_kind(kind: str) -> dict[str, Any] | None:
    for stack in available_stacks():
        for o in stack_manifests(stack):
            if o["kind"] == kind:
                return o
    return None


def test_every_rendered_custom_kind_has_a_break() -> None:
    """New custom kinds in a render need a case here."""
    crd_kinds = {c["spec"]["names"]["kind"] for c in upstream_crds()}
    rendered = {o["kind"] for s in available_stacks() for o in stack_manifests(s) if o["kind"] in crd_kinds}
    assert rendered <= {b.kind for b in BREAKS}, rendered - {b.kind for b in BREAKS}


@pytest.mark.parametrize("case", BREAKS, ids=lambda b: f"{b.kind}: {b.what}")
def test_broken_variant_rejected_with_its_message(case: Break, admin: KubeClient, crds, namespace: str) -> None:
    original = rendered_of_kind(case.kind)
    if original is None:
        pytest.skip(f"no committed stack renders a {case.kind}")
    good = copy.deepcopy(original)
    good["metadata"] = {"name": f"{original['metadata']['name']}-variant", "namespace": namespace}
    admin.apply(good, field_manager="crd-validation-test", dry_run=True)  # the unbroken object is fine

    broken = copy.deepcopy(good)
    case.mutate(broken)
    with pytest.raises(ApiError) as err:
        admin.apply(broken, field_manager="crd-validation-test", dry_run=True)
    e = err.value
    if case.status == 422:
        assert e.reason == "Invalid", e
        causes = {c.get("field"): c.get("message", "") for c in e.causes}
        assert case.field in causes, causes
        assert case.message in causes[case.field], causes[case.field]
    else:
        assert e.status == case.status and case.message in e.message, e

    offline = crd_errors(broken, crds[case.kind])
    assert bool(offline) == case.offline_catches, offline
