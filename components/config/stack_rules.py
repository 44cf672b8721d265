"""StackConfig's cross-field rules: what no single section can check on its own (zones in the
region, CIDR overlaps, references between model servers, pools, models and gateways, names GCP
and Kubernetes derive from the config). Section-specific rules live with their sections
(existing_cluster.py, external.py, autoscaling.py, routing.py) and are called from here."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from ..catalog.machines import KNOWN_H100_ZONES
from ..catalog.names import dns_name, node_service_account_id
from ._base import dns_label
from .autoscaling import autoscaling_rules
from .existing_cluster import existing_cluster_rules
from .external import external_rules
from .routing import gateway_rules

if TYPE_CHECKING:
    from .stack import StackConfig


def stack_rules(cfg: StackConfig) -> list[str]:
    """Rules that span sections; each message starts with the YAML path it is about."""
    problems: list[str] = []
    add = problems.append

    # -- region / zones -------------------------------------------------------------------------
    if not cfg.zones:
        add(f"zones: [] is empty; list the zones of region {cfg.region!r} for nodes, e.g. [{cfg.region}-a, {cfg.region}-c]")
    for i, z in enumerate(cfg.zones):
        if not z.startswith(cfg.region + "-"):
            add(f"zones[{i}]: {z!r} is not in region {cfg.region!r}; use zones like {cfg.region}-a")
        elif cfg.zones.index(z) != i:
            add(f"zones[{i}]: {z!r} is listed twice")
    problems.extend(_gcp_name_rules(cfg))
    problems.extend(_namespace_rules(cfg))
    problems.extend(existing_cluster_rules(cfg))
    h100_zones = set(cfg.cluster.h100_zones_override or KNOWN_H100_ZONES)
    pool_names: list[str] = []
    for i, pool in enumerate(cfg.node_pools):
        name = cfg.node_pool_name(pool)
        if name in pool_names:
            add(f"node_pools[{i}].name: {name!r} is used by two node pools; give one an explicit name")
        pool_names.append(name)
        for z in (pool.node_locations or cfg.zones) if cfg.cluster.existing is None else ():
            if not z.startswith(cfg.region + "-"):
                add(f"node_pools[{i}].node_locations: {z!r} is not in region {cfg.region!r}")
            elif z not in h100_zones:
                add(
                    f"node_pools[{i}].node_locations: {z!r} has no known H100 capacity; use one of "
                    f"{', '.join(sorted(x for x in h100_zones if x.startswith(cfg.region)) or sorted(h100_zones))}"
                    " or list your zones in cluster.h100_zones_override. Quota hint: H100 quota defaults to 0 "
                    "(NVIDIA_H100_GPUS on-demand; spot and flex-start use PREEMPTIBLE_NVIDIA_H100_GPUS)"
                )

    # -- CIDR overlaps -------------------------------------------------------------------------
    ranges: list[tuple[str, str]] = [
        ("network.node_subnet_cidr", cfg.network.node_subnet_cidr),
        ("network.pods_cidr", cfg.network.pods_cidr),
        ("network.services_cidr", cfg.network.services_cidr),
    ]
    for i, p in enumerate(cfg.proxy_only_subnets):
        if p.existing is None:
            ranges.append((f"network.proxy_only_subnets[{i}].cidr", p.cidr))
    if cfg.cluster.private_nodes:
        ranges.append(("cluster.master_cidr", cfg.cluster.master_cidr))
    nets = [(path, ipaddress.ip_network(c)) for path, c in ranges]
    for a in range(len(nets)):
        for b in range(a + 1, len(nets)):
            if nets[a][1].overlaps(nets[b][1]):
                add(f"{nets[b][0]}: {str(nets[b][1])!r} overlaps {nets[a][0]} ({nets[a][1]}); use disjoint ranges")
    regions = [p.region for p in cfg.proxy_only_subnets]
    for i, r in enumerate(regions):
        if regions.index(r) != i:
            add(f"network.proxy_only_subnets[{i}].region: {r!r} already has a proxy-only subnet; a VPC has one ACTIVE proxy-only subnet per region")
    for region in sorted(cfg.gateway_regions - set(regions)):
        add(
            f"network.proxy_only_subnets: gateway region {region!r} has no proxy-only subnet; regional "
            f"gateways need one (add {{region: {region}, cidr: 10.129.0.0/23}})"
        )

    # -- model servers -> node pools ----------------------------------------------------------
    servers = [s.name for s in cfg.model_servers]
    for i, s in enumerate(cfg.model_servers):
        if servers.index(s.name) != i:
            add(f"model_servers[{i}].name: {s.name!r} is used twice")
        node_pool = cfg.node_pool_for(s)
        if node_pool is None and not cfg.cluster.gke:
            continue  # any GPU node: the scheduler places pods requesting nvidia.com/gpu
        if node_pool is None:
            where = f"node pool {s.node_pool!r}" if s.node_pool else "a GPU node pool"
            add(f"model_servers[{i}].node_pool: needs {where}; define it under node_pools (known: {', '.join(pool_names) or 'none'})")
            continue
        gpus = node_pool.machine.gpus
        if s.tensor_parallel_size > gpus:
            add(
                f"model_servers[{i}].tensor_parallel_size: {s.tensor_parallel_size} needs {s.tensor_parallel_size} GPUs "
                f"but {node_pool.machine_type} has {gpus}; use at most {gpus} or a larger machine type"
            )
        elif gpus % s.tensor_parallel_size:
            add(
                f"model_servers[{i}].tensor_parallel_size: {s.tensor_parallel_size} does not divide the "
                f"{gpus} GPUs of {node_pool.machine_type}; use one of {', '.join(str(d) for d in range(1, gpus + 1) if gpus % d == 0)}"
            )

    # -- pools ---------------------------------------------------------------------------------
    pools = [p.name for p in cfg.pools]
    for i, p in enumerate(cfg.pools):
        if pools.index(p.name) != i:
            add(f"pools[{i}].name: {p.name!r} is used twice")
        if p.model_server is not None and p.model_server not in servers:
            add(f"pools[{i}].model_server: {p.model_server!r} is not a model server; use one of {', '.join(servers) or '(none defined)'}")

    # -- served models -------------------------------------------------------------------------
    seen_names: dict[tuple[str, str], int] = {}
    seen_names_before: set[tuple[str, str]] = set()
    object_names: dict[str, int] = {}
    for i, m in enumerate(cfg.models):
        if m.pool not in pools:
            add(f"models[{i}].pool: {m.pool!r} is not an inference pool; use one of {', '.join(pools) or '(none defined)'}")
            continue
        key = (m.pool, m.name)
        if key in seen_names:
            add(f"models[{i}].name: {m.name!r} is already served by pool {m.pool!r} (models[{seen_names[key]}])")
        seen_names[key] = i
        # Routing objects are named after the model (DNS-safe) and share the namespace.
        object_name = dns_name(m.name)
        if object_name in object_names and key not in seen_names_before:
            j = object_names[object_name]
            add(
                f"models[{i}].name: {m.name!r} and models[{j}].name {cfg.models[j].name!r} both name their routing "
                f"objects {object_name!r} in namespace {cfg.namespace!r}; rename one"
            )
        object_names.setdefault(object_name, i)
        seen_names_before.add(key)
        pool = cfg.pool(m.pool)
        if pool.model_server not in servers or m.external is not None:
            continue  # external models: external_rules
        served = cfg.model_server(pool.model_server).served_names
        targets = [t.model for t in m.targets] or [m.name]
        for j, t in enumerate(targets):
            if t not in served:
                path = f"models[{i}].targets[{j}].model" if m.targets else f"models[{i}].name"
                add(f"{path}: {t!r} is not served by pool {m.pool!r}; use its base model or a LoRA adapter id ({', '.join(sorted(served))})")

    # -- gateways ------------------------------------------------------------------------------
    gw_names = [g.name for g in cfg.gateways]
    for i, g in enumerate(cfg.gateways):
        if gw_names.index(g.name) != i:
            add(f"gateways[{i}].name: {g.name!r} is used twice")
        for j, r in enumerate(g.routes):
            for k, pool_name in enumerate(r.pools):
                if pool_name not in pools:
                    path = f"gateways[{i}].routes[{j}]." + ("pool" if r.pool else f"backends[{k}].pool")
                    add(f"{path}: {pool_name!r} is not an inference pool; use one of {', '.join(pools) or '(none defined)'}")
    problems.extend(external_rules(cfg))  # seed 004's external models and their pools (external.py)
    problems.extend(autoscaling_rules(cfg))  # autoscaling, scale to zero, flow control (autoscaling.py)
    if not problems:
        problems.extend(gateway_rules(cfg))  # routes and Model Armor wiring (routing.py)

    # -- Model Armor ---------------------------------------------------------------------------
    if cfg.model_armor is not None:
        ids = [t.id for t in cfg.model_armor.templates]
        for i, guard in enumerate(cfg.model_armor.guards):
            for field in ("prompt_template", "response_template"):
                if getattr(guard, field) not in ids:
                    add(f"model_armor.guards[{i}].{field}: {getattr(guard, field)!r} is not a template; use one of {', '.join(ids) or '(none defined)'}")
        for i, name in enumerate(cfg.model_armor.gateways or []):
            if name not in gw_names:
                add(f"model_armor.gateways[{i}]: {name!r} is not a gateway; use one of {', '.join(gw_names)}")
        if not cfg.model_armor.guards and cfg.model_armor.templates:
            add("model_armor.guards: templates exist but no guard uses them; add {model: default, prompt_template: ..., response_template: ...}")
    return problems


SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease", "gmp-system", "gmp-public")
"""Namespaces every GKE cluster already has: a stack may adopt ``default`` (never in production),
never create or delete any of them."""


def _namespace_rules(cfg: StackConfig) -> list[str]:
    ns = cfg.namespace
    try:
        dns_label(ns)
    except ValueError as err:
        return [f"namespace: {err}"]
    if ns == "default" and cfg.environment == "production":
        return ["namespace: 'default' is not allowed in production stacks; use a namespace of the stack's own (leave namespace unset for name_prefix)"]
    if ns in SYSTEM_NAMESPACES and ns != "default":
        return [f"namespace: {ns!r} belongs to the cluster's system components; use a namespace of the stack's own"]
    if ns == "default" and cfg.create_namespace:
        return ["namespace: 'default' exists in every cluster and a stack must not own (or delete) it; set create_namespace: false to deploy into it"]
    return []


GKE_NAME_MAX = 40
"""GKE cluster and node pool names are at most 40 characters."""


def _gcp_name_rules(cfg: StackConfig) -> list[str]:
    """Names the GCP components derive from the config (issue 3: GCP infrastructure)."""
    problems: list[str] = []
    try:
        node_service_account_id(cfg.name_prefix)
    except ValueError as err:
        problems.append(f"name_prefix: {err}")
    if len(cfg.cluster_name) > GKE_NAME_MAX:
        path = "cluster.name" if cfg.cluster.name else "name_prefix"
        problems.append(
            f"{path}: cluster name {cfg.cluster_name!r} has {len(cfg.cluster_name)} characters; GKE allows at most {GKE_NAME_MAX}"
        )
    for i, pool in enumerate(cfg.node_pools):
        name = cfg.node_pool_name(pool)
        if name == "system":
            problems.append(f"node_pools[{i}].name: 'system' is the CPU system pool's name; use another name")
        if len(name) > GKE_NAME_MAX:
            problems.append(f"node_pools[{i}].name: {name!r} has {len(name)} characters; GKE allows at most {GKE_NAME_MAX}")
        if not cfg.cluster.regional:
            # A zonal cluster's node pools stay within the cluster's zones.
            for z in pool.node_locations or []:
                if z.startswith(cfg.region + "-") and z not in cfg.zones:
                    problems.append(
                        f"node_pools[{i}].node_locations: {z!r} is not a zone of the zonal cluster "
                        f"({', '.join(cfg.zones)}); add it to zones or set cluster.regional: true"
                    )
    return problems
