"""Pod hardening (pure): security contexts, the Pod Security "restricted" rules, the namespace.

``restricted_violations`` checks a pod spec against the Kubernetes Pod Security Standards'
``restricted`` profile (kubernetes.io/docs/concepts/security/pod-security-standards), the same
rules Pod Security admission enforces: the namespace gets ``enforce: restricted`` only when every
workload the stack renders passes, else ``baseline`` with the reason as an annotation.
"""

from __future__ import annotations

from typing import Any, Iterable

from ..catalog.hardening import RuntimeUser

ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"
REASON_ANNOTATION = "inference-gateway.dev/pod-security-reason"
RESTRICTED, BASELINE = "restricted", "baseline"

RESTRICTED_VOLUME_TYPES = frozenset(
    {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"}
)
_VOLUME_META = frozenset({"name"})


def pod_security_context(user: RuntimeUser) -> dict[str, Any]:
    """Pod level: non-root user and group, fsGroup (mounted secrets readable), RuntimeDefault seccomp."""
    return {
        "runAsNonRoot": True,
        "runAsUser": user.uid,
        "runAsGroup": user.gid,
        "fsGroup": user.gid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context(user: RuntimeUser) -> dict[str, Any]:
    """Container level: everything ``restricted`` asks for, plus a read-only root filesystem."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": user.uid,
        "runAsGroup": user.gid,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _containers(pod: dict[str, Any]) -> Iterable[tuple[str, dict[str, Any]]]:
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for c in pod.get(key) or []:
            yield f"{key}[{c.get('name')}]", c


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    """Every way ``pod`` (a PodSpec) breaks the ``restricted`` profile; [] when it meets it."""
    problems: list[str] = []
    add = problems.append
    psc = pod.get("securityContext") or {}
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            add(f"{key}: true")
    for v in pod.get("volumes") or []:
        kinds = set(v) - _VOLUME_META
        if not kinds <= RESTRICTED_VOLUME_TYPES:
            add(f"volumes[{v.get('name')}]: type {', '.join(sorted(kinds - RESTRICTED_VOLUME_TYPES))} is not allowed")
    pod_seccomp = (psc.get("seccompProfile") or {}).get("type")
    if pod_seccomp not in (None, "RuntimeDefault", "Localhost"):
        add(f"securityContext.seccompProfile.type: {pod_seccomp}")
    if psc.get("runAsUser") == 0:
        add("securityContext.runAsUser: 0")
    for where, c in _containers(pod):
        sc = c.get("securityContext") or {}
        if sc.get("privileged"):
            add(f"{where}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            add(f"{where}: allowPrivilegeEscalation is not false")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            add(f"{where}: capabilities.drop does not include ALL")
        extra = set(caps.get("add") or []) - {"NET_BIND_SERVICE"}
        if extra:
            add(f"{where}: adds capabilities {', '.join(sorted(extra))}")
        non_root = sc.get("runAsNonRoot", psc.get("runAsNonRoot"))
        if non_root is not True:
            add(f"{where}: runAsNonRoot is not true")
        if sc.get("runAsUser") == 0:
            add(f"{where}: runAsUser: 0")
        seccomp = (sc.get("seccompProfile") or {}).get("type") or pod_seccomp
        if seccomp not in ("RuntimeDefault", "Localhost"):
            add(f"{where}: no RuntimeDefault or Localhost seccomp profile")
        for p in c.get("ports") or []:
            if p.get("hostPort"):
                add(f"{where}: hostPort {p['hostPort']}")
    return problems


def pod_security_level(exceptions: dict[str, str]) -> tuple[str, str | None]:
    """(level, reason): ``restricted`` unless some workload cannot meet it (``exceptions`` maps
    each such workload to why), then ``baseline`` with the reasons."""
    if not exceptions:
        return RESTRICTED, None
    return BASELINE, "; ".join(f"{name}: {why}" for name, why in sorted(exceptions.items()))


def namespace(name: str, level: str, reason: str | None, labels: dict[str, str] | None = None) -> dict[str, Any]:
    """The stack's namespace with Pod Security admission labels: ``level`` enforced, and
    ``restricted`` always warned about and audited, so any gap shows up in kubectl and audit logs."""
    meta: dict[str, Any] = {
        "name": name,
        "labels": {
            **(labels or {}),
            ENFORCE_LABEL: level,
            "pod-security.kubernetes.io/warn": RESTRICTED,
            "pod-security.kubernetes.io/audit": RESTRICTED,
        },
    }
    if reason:
        meta["annotations"] = {REASON_ANNOTATION: reason}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}
