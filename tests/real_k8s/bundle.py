"""A rendered InferencePool with everything its picker runs with, found in a stack's objects by
reference (never by naming convention): the picker Deployment (`--pool-name`), its
ServiceAccount, the Roles bound to that ServiceAccount, the ConfigMap behind `--config-file`, the
pool's InferenceObjectives and InferenceModelRewrites, and the model-server Deployment whose pod
labels the pool selects."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    return deployment["spec"]["template"]["spec"]["containers"][0]


def flag(args: list[str], name: str) -> str | None:
    """The value of `--name VALUE` or `--name=VALUE` in an argv."""
    for i, a in enumerate(args):
        if a == name and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return None


def _pool_ref(obj: dict[str, Any]) -> str | None:
    return (obj["spec"].get("poolRef") or {}).get("name")


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


@dataclass
class PickerBundle:
    stack: str
    pool: dict[str, Any]
    picker: dict[str, Any]
    service_account: dict[str, Any]
    roles: list[dict[str, Any]]
    role_bindings: list[dict[str, Any]]
    config_map: dict[str, Any]
    objectives: list[dict[str, Any]]
    rewrites: list[dict[str, Any]]
    model_server: dict[str, Any]

    @property
    def pool_name(self) -> str:
        return self.pool["metadata"]["name"]

    @property
    def picker_args(self) -> list[str]:
        return [str(a) for a in _container(self.picker).get("args") or []]

    @property
    def leader_election(self) -> bool:
        return "--ha-enable-leader-election" in self.picker_args

    def picker_config(self) -> str:
        """The picker.yaml the Deployment mounts (the ConfigMap key named by --config-file)."""
        return self.config_map["data"][posixpath.basename(flag(self.picker_args, "--config-file") or "")]

    def rbac_objects(self) -> list[dict[str, Any]]:
        return [self.service_account, *self.roles, *self.role_bindings]


def picker_bundles(stack: str, objects: list[dict[str, Any]]) -> list[PickerBundle]:
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for o in objects:
        by_kind.setdefault(o["kind"], []).append(o)
    bundles = []
    for pool in by_kind.get("InferencePool", []):
        name = pool["metadata"]["name"]
        picker = next(d for d in by_kind.get("Deployment", [])
                      if flag([str(a) for a in _container(d).get("args") or []], "--pool-name") == name)
        pod_spec = picker["spec"]["template"]["spec"]
        sa_name = pod_spec["serviceAccountName"]
        sa = next(s for s in by_kind["ServiceAccount"] if s["metadata"]["name"] == sa_name)
        bindings = [b for b in by_kind.get("RoleBinding", []) if any(
            s.get("kind") == "ServiceAccount" and s.get("name") == sa_name for s in b.get("subjects") or [])]
        roles = [r for r in by_kind.get("Role", []) for b in bindings if r["metadata"]["name"] == b["roleRef"]["name"]]
        config_dir = posixpath.dirname(flag([str(a) for a in _container(picker)["args"]], "--config-file") or "")
        mount = next(m for m in _container(picker).get("volumeMounts") or [] if m["mountPath"] == config_dir)
        volume = next(v for v in pod_spec["volumes"] if v["name"] == mount["name"])
        config_map = next(c for c in by_kind["ConfigMap"] if c["metadata"]["name"] == volume["configMap"]["name"])
        selector = pool["spec"]["selector"]["matchLabels"]
        model_server = next(d for d in by_kind.get("Deployment", [])
                            if _selects(selector, d["spec"]["template"]["metadata"].get("labels") or {}))
        bundles.append(PickerBundle(
            stack, pool, picker, sa, roles, bindings, config_map,
            [o for o in by_kind.get("InferenceObjective", []) if _pool_ref(o) == name],
            [o for o in by_kind.get("InferenceModelRewrite", []) if _pool_ref(o) == name],
            model_server))
    return bundles
