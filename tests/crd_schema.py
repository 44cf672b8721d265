"""Validate custom objects against CRD OpenAPI schemas (upstream or our own), reusable by any test.

    from tests.crd_schema import upstream_crd, crd_errors, validate_with_upstream

    errors = validate_with_upstream(obj)          # [] when the upstream CRD accepts obj
    errors = crd_errors(obj, our_crd_dict)        # same, against a CRD dict we render

What is checked, like the API server would (minus admission webhooks):
- the version's ``openAPIV3Schema`` as JSON Schema (jsonschema Draft 7), with Kubernetes
  extensions handled: ``x-kubernetes-int-or-string``, ``x-kubernetes-preserve-unknown-fields``,
  ``nullable``; formats int32/int64 bounds;
- unknown fields are errors here (the API server would silently prune them: for us a typo);
- ``default`` values are applied before CEL, as the API server does;
- ``x-kubernetes-validations`` CEL rules, evaluated with cel-python. Rules that use
  ``oldSelf`` (transition rules) or functions cel-python lacks are listed in ``skipped_rules``.

Upstream CRDs live in ``../shared/schemas/crds`` (beside the checkout), plus the add-ons' CRDs we
keep in ``tests/fixtures/crds`` (KEDA, the Secrets Store CSI driver; sources in its SOURCES.txt).
``upstream_crd`` skips the calling test with a clear message when the shared folder is absent.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
UPSTREAM_DIR = REPO.parent / "shared" / "schemas" / "crds"
ADDON_CRD_DIR = REPO / "tests" / "fixtures" / "crds"


def crd_files() -> list[Path]:
    """Every upstream and add-on CRD file."""
    return sorted(UPSTREAM_DIR.glob("*.yaml")) + sorted(ADDON_CRD_DIR.glob("*.yaml"))

skipped_rules: set[str] = set()
"""CEL rules seen but not evaluated (transition rules, unsupported functions)."""


# -- loading ---------------------------------------------------------------------------------------
def _require_upstream() -> None:
    if not UPSTREAM_DIR.is_dir():
        pytest.skip(f"upstream CRDs not found at {UPSTREAM_DIR} (expected ../shared/schemas/crds beside the checkout)")


@functools.lru_cache(maxsize=None)
def _upstream_index() -> dict[tuple[str, str], dict[str, Any]]:
    index = {}
    for path in crd_files():
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "CustomResourceDefinition":
                index[(doc["spec"]["group"], doc["spec"]["names"]["kind"])] = doc
    return index


def upstream_crd(api_version: str, kind: str) -> dict[str, Any]:
    """The upstream CRD serving ``kind`` in the group of ``api_version`` (skips without shared/)."""
    _require_upstream()
    group = api_version.split("/")[0] if "/" in api_version else ""
    try:
        return _upstream_index()[(group, kind)]
    except KeyError:
        raise LookupError(f"no upstream CRD for {kind} in group {group!r} under {UPSTREAM_DIR}") from None


def version_schema(crd: dict[str, Any], version: str) -> dict[str, Any]:
    for v in crd["spec"]["versions"]:
        if v["name"] == version:
            if not v.get("served", True):
                raise LookupError(f"{crd['metadata']['name']}: version {version} is not served")
            return v["schema"]["openAPIV3Schema"]
    served = [v["name"] for v in crd["spec"]["versions"]]
    raise LookupError(f"{crd['metadata']['name']} has no version {version!r} (has {served})")


# -- OpenAPI (structural schema) -> JSON Schema -------------------------------------------------
_INT_BOUNDS = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
_DROP = {"description", "example", "externalDocs", "x-kubernetes-validations", "x-kubernetes-list-type",
         "x-kubernetes-list-map-keys", "x-kubernetes-map-type", "x-kubernetes-embedded-resource", "default", "format"}


def to_json_schema(node: Any, strict_unknown: bool = True) -> Any:
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    preserve = node.get("x-kubernetes-preserve-unknown-fields", False)
    for key, value in node.items():
        if key in _DROP or key == "x-kubernetes-preserve-unknown-fields":
            continue
        if key == "x-kubernetes-int-or-string":
            continue
        if key == "nullable":
            continue
        if key == "properties":
            out[key] = {k: to_json_schema(v, strict_unknown) for k, v in value.items()}
        elif key in ("items", "additionalProperties", "not"):
            out[key] = to_json_schema(value, strict_unknown) if isinstance(value, dict) else value
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [to_json_schema(v, strict_unknown) for v in value]
        else:
            out[key] = value
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    fmt = node.get("format")
    if fmt in _INT_BOUNDS and node.get("type") == "integer":
        lo, hi = _INT_BOUNDS[fmt]
        out.setdefault("minimum", lo)
        out.setdefault("maximum", hi)
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if (
        strict_unknown
        and node.get("type") == "object"
        and "properties" in node
        and "additionalProperties" not in node
        and not preserve
    ):
        out["additionalProperties"] = False
    return out


# -- defaults and CEL --------------------------------------------------------------------------------
def apply_defaults(value: Any, schema: dict[str, Any]) -> Any:
    """Structural defaulting: fill ``default`` of absent properties, recursively."""
    if isinstance(value, dict) and schema.get("type") == "object":
        out = dict(value)
        for name, sub in (schema.get("properties") or {}).items():
            if name not in out and "default" in sub:
                out[name] = copy.deepcopy(sub["default"])
            if name in out:
                out[name] = apply_defaults(out[name], sub)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for name in out:
                if name not in (schema.get("properties") or {}):
                    out[name] = apply_defaults(out[name], extra)
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [apply_defaults(v, schema["items"]) for v in value]
    return value


@functools.lru_cache(maxsize=None)
def _cel_program(rule: str):
    import celpy

    env = celpy.Environment()
    return env.program(env.compile(rule))


def cel_errors(value: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Evaluate every ``x-kubernetes-validations`` rule at every level of ``value``."""
    import celpy

    errors: list[str] = []
    for rule in schema.get("x-kubernetes-validations") or []:
        expr = rule["rule"]
        if "oldSelf" in expr:
            skipped_rules.add(expr)
            continue
        try:
            result = _cel_program(expr).evaluate({"self": celpy.json_to_cel(value)})
        except Exception:  # cel-python lacks some Kubernetes CEL libraries
            skipped_rules.add(expr)
            continue
        if isinstance(result, Exception) or not bool(result):
            errors.append(f"{path or '<root>'}: {rule.get('message') or expr}")
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        for name, sub in value.items():
            sub_schema = props.get(name) or (schema.get("additionalProperties") if isinstance(schema.get("additionalProperties"), dict) else None)
            if sub_schema:
                errors += cel_errors(sub, sub_schema, f"{path}.{name}" if path else name)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            errors += cel_errors(item, schema["items"], f"{path}[{i}]")
    return errors


# -- entry points ------------------------------------------------------------------------------------
def crd_errors(obj: dict[str, Any], crd: dict[str, Any]) -> list[str]:
    """Everything the CRD rejects in ``obj`` (one line per problem); [] when accepted."""
    group, _, version = obj["apiVersion"].rpartition("/")
    if group != crd["spec"]["group"] or obj["kind"] != crd["spec"]["names"]["kind"]:
        return [f"{obj['apiVersion']} {obj['kind']} is not served by CRD {crd['metadata']['name']}"]
    # A namespaced object without metadata.namespace is fine: the client supplies it.
    schema = version_schema(crd, version)
    body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
    validator = jsonschema.Draft7Validator(to_json_schema({**schema, "properties": {k: v for k, v in schema.get("properties", {}).items() if k not in ("apiVersion", "kind", "metadata")}}))
    errors = [f"{'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}" for e in validator.iter_errors(body)]
    if not errors:
        errors += cel_errors(apply_defaults(body, schema), schema)
    return errors


def validate_with_upstream(obj: dict[str, Any]) -> list[str]:
    """``crd_errors`` against the upstream CRD of the object's group and kind."""
    return crd_errors(obj, upstream_crd(obj["apiVersion"], obj["kind"]))
