"""File discovery: rendered Kubernetes manifests plus an endpoints file, hot-reloaded by mtime.

--manifests-dir: *.yaml / *.yml / *.json files, one or more objects each. Used: the
InferencePool named --pool-name (inference.networking.k8s.io/v1) and the InferenceObjective /
InferenceModelRewrite objects whose spec.poolRef.name is that pool.
--endpoints-file: YAML `pods: [{name, namespace, address, labels: {...}, ready: bool}]`;
endpoints = ready pods matching the pool selector, one per spec.targetPorts[].number.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import yaml

from ..datastore import Datastore, Endpoint, parse_objective, parse_pool, parse_rewrite, pool_ref_name, selector_matches

log = logging.getLogger(__name__)

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
POOL_KIND = "InferencePool"
OBJECTIVE_KIND = "InferenceObjective"
REWRITE_KIND = "InferenceModelRewrite"


def load_objects(directory: Path) -> list[dict[str, Any]]:
    objs: list[dict[str, Any]] = []
    for f in sorted(directory.rglob("*")):
        if f.suffix not in (".yaml", ".yml", ".json") or not f.is_file():
            continue
        for doc in yaml.load_all(f.read_text(), Loader=_Loader):
            if isinstance(doc, dict):
                if doc.get("kind") == "List":
                    objs.extend(i for i in doc.get("items") or [] if isinstance(i, dict))
                else:
                    objs.append(doc)
    return objs


def endpoints_for(pool_obj: dict[str, Any], pods: list[dict[str, Any]]) -> list[Endpoint]:
    pool = parse_pool(pool_obj)
    out = []
    for pod in pods:
        labels = {str(k): str(v) for k, v in (pod.get("labels") or {}).items()}
        if not pod.get("ready", True) or not pod.get("address") or not selector_matches(pool.selector, labels):
            continue
        for port in pool.target_ports:
            out.append(Endpoint(
                name=str(pod.get("name", pod["address"])), namespace=str(pod.get("namespace", pool.namespace)),
                address=str(pod["address"]), port=port, labels=tuple(sorted(labels.items())),
            ))
    return out


def apply_objects(store: Datastore, pool_name: str, pool_namespace: str | None, objects: list[dict[str, Any]],
                  pods: list[dict[str, Any]]) -> bool:
    """Load one consistent snapshot into the store; returns whether the pool was found."""
    def in_ns(o: dict[str, Any]) -> bool:
        ns = (o.get("metadata") or {}).get("namespace")
        return pool_namespace is None or ns is None or ns == pool_namespace

    pool_obj = next((o for o in objects if o.get("kind") == POOL_KIND
                     and (o.get("metadata") or {}).get("name") == pool_name and in_ns(o)), None)
    if pool_obj is None:
        store.set_pool(None)
        store.set_endpoints([])
        return False
    store.set_pool(parse_pool(pool_obj))
    store.set_objectives([parse_objective(o) for o in objects
                          if o.get("kind") == OBJECTIVE_KIND and pool_ref_name(o) == pool_name and in_ns(o)])
    rules = []
    for o in objects:
        if o.get("kind") == REWRITE_KIND and pool_ref_name(o) == pool_name and in_ns(o):
            rules.extend(parse_rewrite(o))
    store.set_rewrites(rules)
    new = endpoints_for(pool_obj, pods)
    if [e.key for e in new] != list(store.endpoints) or set(new) != set(store.endpoints.values()):
        store.set_endpoints(new)
    return True


class FileDiscovery:
    def __init__(self, store: Datastore, *, pool_name: str, pool_namespace: str | None,
                 manifests_dir: str | Path, endpoints_file: str | Path | None, poll_s: float = 0.2) -> None:
        self.store = store
        self.pool_name = pool_name
        self.pool_namespace = pool_namespace
        self.manifests_dir = Path(manifests_dir)
        self.endpoints_file = Path(endpoints_file) if endpoints_file else None
        self.poll_s = poll_s
        self._stamp: tuple[Any, ...] | None = None

    def _fingerprint(self) -> tuple[Any, ...]:
        items = []
        for f in sorted(self.manifests_dir.rglob("*")):
            if f.is_file():
                st = f.stat()
                items.append((str(f), st.st_mtime_ns, st.st_size))
        if self.endpoints_file is not None and self.endpoints_file.exists():
            st = self.endpoints_file.stat()
            items.append((str(self.endpoints_file), st.st_mtime_ns, st.st_size))
        return tuple(items)

    def reload(self) -> bool:
        """Reload if anything changed; returns True when a new snapshot was applied."""
        stamp = self._fingerprint()
        if stamp == self._stamp:
            return False
        try:
            objects = load_objects(self.manifests_dir)
            pods: list[dict[str, Any]] = []
            if self.endpoints_file is not None and self.endpoints_file.exists():
                data = yaml.load(self.endpoints_file.read_text(), Loader=_Loader) or {}
                pods = [p for p in data.get("pods") or [] if isinstance(p, dict)]
        except (OSError, yaml.YAMLError) as e:
            # A half-written file: keep the last good state and retry on the next poll.
            log.warning("discovery reload failed: %s", e)
            return False
        self._stamp = stamp
        found = apply_objects(self.store, self.pool_name, self.pool_namespace, objects, pods)
        if found:
            self.store.synced = True
        else:
            log.warning("InferencePool %s not found in %s", self.pool_name, self.manifests_dir)
        return True

    async def run(self) -> None:
        while True:
            self.reload()
            await asyncio.sleep(self.poll_s)
