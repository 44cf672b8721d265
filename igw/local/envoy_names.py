"""The names the local Envoy configuration gives its resources, shared by the routes
(envoy_routes.py), the listeners and clusters, the xDS files (envoy.py) and the supervisor."""

from __future__ import annotations

import re

from .plan_routes import Listener

HEADER_MUTATION = "igw.header_mutation"
"""The HCM filter that applies HTTPRoute RequestHeaderModifier per route, before ext_proc."""


def ext_proc_name(pool: str) -> str:
    return f"igw.ext_proc.{pool}"


def pool_cluster_name(pool: str) -> str:
    return f"pool.{pool}"


def picker_cluster_name(pool: str) -> str:
    return f"picker.{pool}"


def listener_name(lst: Listener) -> str:
    return f"{lst.gateway}/{lst.name}"


def rds_file(lst: Listener) -> str:
    """One file per route config: a filesystem RDS subscription takes exactly one resource."""
    return "rds-" + re.sub(r"[^a-zA-Z0-9_.-]", "_", listener_name(lst)) + ".yaml"
