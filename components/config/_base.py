"""Shared pieces of the stack config: the strict base model and how errors are worded.

Every message names the YAML path, the bad value and what is allowed, e.g.
``gateways[0].class: 'gke-l7-global-external-managed' is not supported; use
gke-l7-regional-external-managed or gke-l7-rilb``.
"""

from __future__ import annotations

import ipaddress
import re
import typing
from typing import Any, Iterable

import pydantic
from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """Unknown keys are errors, values are never coerced silently, objects are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, strict=False)


class ConfigError(ValueError):
    """Stack config is invalid. ``problems`` holds one ``path: message`` line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


def yaml_path(loc: Iterable[Any]) -> str:
    """('gateways', 0, 'class') -> 'gateways[0].class'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after", "function-before", "function-wrap", "function-plain"):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out


def show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, (int, float, bool)) or value is None:
        return repr(value)
    return repr(value) if len(repr(value)) < 80 else type(value).__name__


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str] | None:
    """Field names (YAML keys) of the model found by walking ``loc`` from ``model``."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(part, int) or part in ("function-after", "function-before"):
            continue
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = _field_by_key(current, part)
            if field is None:
                return None
            current = field.annotation
        else:
            return None
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or name for name, f in current.model_fields.items()]
    return None


def _field_by_key(model: type[BaseModel], key: str):
    for name, f in model.model_fields.items():
        if key in (name, f.alias):
            return f
    return None


def _unwrap(tp: Any) -> Any:
    """list[X] / X | None / dict[str, X] -> X (the model the YAML nests into)."""
    while True:
        origin = typing.get_origin(tp)
        if origin in (list, tuple, set, frozenset):
            tp = typing.get_args(tp)[0]
        elif origin is dict:
            tp = typing.get_args(tp)[1]
        elif origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
            models = [a for a in typing.get_args(tp) if isinstance(a, type) and issubclass(a, BaseModel)]
            if not models:
                return tp
            tp = models[0]
        elif origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        else:
            return tp


def describe_validation_error(root: type[BaseModel], err: pydantic.ValidationError, prefix: tuple = ()) -> list[str]:
    """Turn pydantic's errors into our one-line-per-problem wording."""
    problems = []
    for e in err.errors():
        loc = prefix + tuple(e["loc"])
        path = yaml_path(loc) or "(stack)"
        kind = e["type"]
        value = e.get("input")
        if kind == "literal_error":
            allowed = e["ctx"]["expected"].replace("'", "")
            problems.append(f"{path}: {show(value)} is not supported; use {allowed}")
        elif kind == "extra_forbidden":
            fields = _fields_at(root, tuple(e["loc"])[:-1])
            hint = f"; allowed: {', '.join(fields)}" if fields else ""
            problems.append(f"{path}: unknown field{hint}")
        elif kind == "missing":
            problems.append(f"{path}: is required")
        elif kind in ("value_error", "assertion_error"):
            msg = e["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
            problems.append(f"{path}: {msg}")
        else:
            problems.append(f"{path}: {show(value)} is invalid ({e['msg'][0].lower()}{e['msg'][1:]})")
    return problems


_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")


def dns_label(value: str) -> str:
    """A Kubernetes / GCP resource name (RFC 1035 label)."""
    if not _DNS_LABEL.match(value):
        raise ValueError(
            f"{value!r} is not a valid name; use lowercase letters, digits and '-', "
            "starting with a letter, at most 63 characters"
        )
    return value


def cidr(value: str) -> str:
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError:
        raise ValueError(f"{value!r} is not a CIDR range like 10.0.0.0/20") from None
    if net.version != 4:
        raise ValueError(f"{value!r} is IPv6; use an IPv4 CIDR range")
    return value
