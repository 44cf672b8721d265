"""CustomResourceDefinitions the package installs when the cluster lacks them (pure).

Schemas are written here from the published field definitions (GIE ``api/v1`` InferencePool;
llm-d-router ``apix/v1alpha2`` InferenceObjective / InferenceModelRewrite); tests check that
they accept everything the upstream CRDs accept for the objects we render.

- InferencePool v1: GKE installs it itself from 1.34.0-gke.1626000; older control planes need it.
- InferenceObjective / InferenceModelRewrite (llm-d.ai): never installed by GKE.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

GKE_INSTALLS_INFERENCE_POOL = (1, 34, 0, 1626000)
"""GKE >= 1.34.0-gke.1626000 installs the GA Gateway API + InferencePool v1 CRDs."""

_GROUP_PATTERN = r"^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_KIND_PATTERN = r"^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$"
_LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"


def gke_version(version: str) -> tuple[int, int, int, int]:
    """'1.33.2-gke.1335000' -> (1, 33, 2, 1335000); '1.32.3' -> (1, 32, 3, 0); '1.33' -> (1, 33, 0, 0)."""
    m = re.match(r"^(\d+)\.(\d+)(?:\.(\d+))?(?:-gke\.(\d+))?$", version.strip())
    if not m:
        raise ValueError(f"{version!r} is not a GKE version like 1.33.2-gke.1335000")
    return tuple(int(g or 0) for g in m.groups())  # type: ignore[return-value]


def needs_inference_pool_crd(min_master_version: str) -> bool:
    """True when the cluster's minimum version predates GKE installing InferencePool v1."""
    if min_master_version.strip().lower() == "latest":
        return False
    return gke_version(min_master_version) < GKE_INSTALLS_INFERENCE_POOL


# -- schema vocabulary --------------------------------------------------------------------------------
def _str(**kw: Any) -> dict[str, Any]:
    return {"type": "string", **kw}


def _int32(**kw: Any) -> dict[str, Any]:
    return {"type": "integer", "format": "int32", **kw}


def _obj(properties: dict[str, Any], required: list[str] | None = None, **kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        out["required"] = required
    out.update(kw)
    return out


def _arr(items: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return {"type": "array", "items": items, **kw}


def _port() -> dict[str, Any]:
    return _obj({"number": _int32(minimum=1, maximum=65535)}, ["number"])


def _pool_ref() -> dict[str, Any]:
    """Reference to the InferencePool an objective / rewrite applies to (same namespace)."""
    return _obj(
        {
            "group": _str(default="inference.networking.k8s.io", maxLength=253, pattern=_GROUP_PATTERN),
            "kind": _str(default="InferencePool", minLength=1, maxLength=63, pattern=_KIND_PATTERN),
            "name": _str(minLength=1, maxLength=253),
        },
        ["name"],
    )


def _condition() -> dict[str, Any]:
    return _obj(
        {
            "lastTransitionTime": _str(format="date-time"),
            "message": _str(maxLength=32768),
            "observedGeneration": {"type": "integer", "format": "int64", "minimum": 0},
            "reason": _str(minLength=1, maxLength=1024),
            "status": _str(enum=["True", "False", "Unknown"]),
            "type": _str(maxLength=316),
        },
        ["lastTransitionTime", "message", "reason", "status", "type"],
    )


def _conditions() -> dict[str, Any]:
    return _arr(_condition(), maxItems=8, **{"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]})


def _root(spec: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    return _obj(
        {
            "apiVersion": _str(),
            "kind": _str(),
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        }
    )


def _crd(group: str, kind: str, plural: str, version: str, schema: dict[str, Any], columns: list[dict[str, Any]], short_names: list[str] | None = None) -> dict[str, Any]:
    names: dict[str, Any] = {"kind": kind, "listKind": f"{kind}List", "plural": plural, "singular": kind.lower()}
    if short_names:
        names["shortNames"] = short_names
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}", "labels": {"app.kubernetes.io/managed-by": "inference-gateway"}},
        "spec": {
            "group": group,
            "names": names,
            "scope": "Namespaced",
            "versions": [
                {
                    "name": version,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


_AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


# -- InferencePool v1 ----------------------------------------------------------------------------------
def inference_pool_crd() -> dict[str, Any]:
    spec = _obj(
        {
            "selector": _obj(
                {
                    "matchLabels": {
                        "type": "object",
                        "additionalProperties": _str(minLength=0, maxLength=63, pattern=_LABEL_VALUE_PATTERN),
                        "minProperties": 1,
                        "maxProperties": 64,
                    }
                },
                ["matchLabels"],
            ),
            "targetPorts": _arr(
                _port(),
                minItems=1,
                maxItems=8,
                **{
                    "x-kubernetes-list-type": "atomic",
                    "x-kubernetes-validations": [
                        {"rule": "self.all(p1, self.exists_one(p2, p1.number==p2.number))", "message": "port number must be unique"}
                    ],
                },
            ),
            "appProtocol": _str(enum=["http", "kubernetes.io/h2c"], default="http"),
            "endpointPickerRef": _obj(
                {
                    "group": _str(default="", minLength=0, maxLength=253, pattern=_GROUP_PATTERN),
                    "kind": _str(default="Service", minLength=1, maxLength=63, pattern=_KIND_PATTERN),
                    "name": _str(minLength=1, maxLength=253),
                    "port": _port(),
                    "failureMode": _str(enum=["FailOpen", "FailClose"], default="FailClose"),
                },
                ["name"],
                **{
                    "x-kubernetes-validations": [
                        {
                            "rule": "self.kind != 'Service' || has(self.port)",
                            "message": "port is required when kind is 'Service' or unspecified (defaults to 'Service')",
                        }
                    ]
                },
            ),
        },
        ["selector", "targetPorts"],
    )
    parent_ref = _obj(
        {
            "group": _str(default="gateway.networking.k8s.io", maxLength=253, pattern=_GROUP_PATTERN),
            "kind": _str(default="Gateway", minLength=1, maxLength=63, pattern=_KIND_PATTERN),
            "name": _str(minLength=1, maxLength=253),
            "namespace": _str(minLength=1, maxLength=63),
        },
        ["name"],
    )
    status = _obj(
        {
            "parents": _arr(
                _obj({"parentRef": parent_ref, "conditions": _conditions(), "controllerName": _str(minLength=1, maxLength=253)}, ["parentRef"]),
                maxItems=32,
                **{"x-kubernetes-list-type": "atomic"},
            )
        }
    )
    crd = _crd("inference.networking.k8s.io", "InferencePool", "inferencepools", "v1", _root(spec, status), [_AGE], ["infpool"])
    # Core-group CRDs need the API-review annotation; this is the upstream approval.
    crd["metadata"]["annotations"] = {"api-approved.kubernetes.io": "https://github.com/kubernetes-sigs/gateway-api-inference-extension/pull/1173"}
    return crd


# -- llm-d.ai ----------------------------------------------------------------------------------------
def _llmd_status() -> dict[str, Any]:
    return _obj({"conditions": _conditions()})


def inference_objective_crd() -> dict[str, Any]:
    spec = _obj(
        {
            # Higher is more important; negative priorities are sheddable; unset counts as 0.
            "priority": _int32(),
            "poolRef": _pool_ref(),
        },
        ["poolRef"],
    )
    columns = [
        {"name": "Inference Pool", "type": "string", "jsonPath": ".spec.poolRef.name"},
        {"name": "Priority", "type": "string", "jsonPath": ".spec.priority"},
        _AGE,
    ]
    return _crd("llm-d.ai", "InferenceObjective", "inferenceobjectives", "v1alpha2", _root(spec, _llmd_status()), columns)


def inference_model_rewrite_crd() -> dict[str, Any]:
    match = _obj({"model": _obj({"type": _str(enum=["Exact"], default="Exact"), "value": _str(minLength=1)}, ["value"])}, ["model"])
    target = _obj({"modelRewrite": _str(), "weight": _int32(minimum=1, maximum=1_000_000)}, ["modelRewrite"])
    spec = _obj(
        {
            "poolRef": _pool_ref(),
            "rules": _arr(_obj({"matches": _arr(match), "targets": _arr(target, minItems=1)})),
        },
        ["poolRef", "rules"],
    )
    columns = [{"name": "Inference Pool", "type": "string", "jsonPath": ".spec.poolRef.name"}, _AGE]
    return _crd("llm-d.ai", "InferenceModelRewrite", "inferencemodelrewrites", "v1alpha2", _root(spec, _llmd_status()), columns)


def crds_to_install(min_master_version: str, *, gke: bool = True, installed: Iterable[str] = ()) -> list[dict[str, Any]]:
    """The CRDs the stack installs: what the serving layer needs minus what the cluster has.

    On GKE (`gke`) the version decides whether GKE installed InferencePool v1 itself; any other
    cluster has none of them unless `installed` (kinds) says so (cluster.existing.installed_crds).
    """
    has = set(installed)
    out = []
    if (needs_inference_pool_crd(min_master_version) or not gke) and "InferencePool" not in has:
        out.append(inference_pool_crd())
    out += [crd for crd in (inference_objective_crd(), inference_model_rewrite_crd()) if crd["spec"]["names"]["kind"] not in has]
    return out
