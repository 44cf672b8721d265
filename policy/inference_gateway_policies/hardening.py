"""Hardened workloads: the pod security, network isolation and namespace the program renders.

Each check is two policies with the same validation: ``<name>``, mandatory in production stacks
(the stack's environment is in config ``environments``, default ``["production"]``), and
``<name>-advisory``, advisory in every other stack (silent where ``environments`` puts the
mandatory one; set the same ``environments`` on both).

* ``model-servers-hardened`` - every container and native sidecar of a pod requesting
  nvidia.com/gpu runs as non-root with ``allowPrivilegeEscalation: false``, a read-only root
  filesystem, ``capabilities.drop: [ALL]`` and nothing added, a RuntimeDefault (or Localhost)
  seccomp profile, and the pod mounts no service-account token.
* ``workloads-hardened`` - every other workload (the endpoint picker): the same security
  context. Running as non-root is ``workloads-run-as-non-root`` (mandatory everywhere), and the
  picker needs its token (it watches the API).
* ``network-policies-present`` (stack) - every workload's pods are selected by NetworkPolicies of
  their namespace that restrict both ingress and egress.
* ``namespace-not-default`` - every namespaced object names its namespace, and that is not
  ``default`` or a namespace the cluster's own components use.
* ``namespace-pod-security`` - every Namespace the stack creates enforces a Pod Security level:
  ``restricted``, or ``baseline`` with the reason in ``inference-gateway.dev/pod-security-reason``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)

from ._common import (
    WORKLOAD_KINDS,
    applies_to_environment,
    config,
    containers,
    get,
    is_gpu_workload,
    is_map,
    items,
    k8s_kind,
    k8s_name,
    label,
    pod_spec,
)
from .gke import ENVIRONMENTS_SCHEMA
from .workloads import runs_as_non_root

ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"
REASON_ANNOTATION = "inference-gateway.dev/pod-security-reason"
SECCOMP_TYPES = ("RuntimeDefault", "Localhost")
SYSTEM_NAMESPACES = ["default", "kube-system", "kube-public", "kube-node-lease", "gmp-system", "gmp-public"]
CLUSTER_SCOPED_KINDS = {
    "Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "GatewayClass", "PriorityClass",
    "StorageClass", "PersistentVolume", "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration",
    "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "ClusterPodMonitoring", "ClusterRules",
    "GlobalRules", "ClusterNodeMonitoring", "APIService", "RuntimeClass", "IngressClass",
}
"""Kinds without a namespace (the rest of ``kubernetes:`` types are namespaced)."""

Validate = Callable[[Any, ReportViolation], None]


def _who(resource_type: str, props: Mapping[str, Any], name: str) -> str:
    return label(resource_type, k8s_name(props, name))


def _is_workload(args: ResourceValidationArgs) -> bool:
    group, kind = k8s_kind(args.resource_type)
    return group == "apps" and kind in WORKLOAD_KINDS and pod_spec(args.props) is not None


# -- pod security ------------------------------------------------------------------------------

def security_context_problems(pod: Mapping[str, Any], container: Mapping[str, Any], non_root: bool) -> list[str]:
    """What keeps ``container`` (of ``pod``) from running hardened; [] when it does."""
    sc = get(container, "securityContext") or {}
    problems: list[str] = []
    if non_root and not runs_as_non_root(pod, container):
        problems.append("may run as root (runAsNonRoot/runAsUser)")
    if sc.get("allowPrivilegeEscalation") is not False:
        problems.append("allowPrivilegeEscalation is not false")
    if sc.get("readOnlyRootFilesystem") is not True:
        problems.append("readOnlyRootFilesystem is not true")
    drop = [str(c) for c in items(get(sc, "capabilities.drop"))]
    add = [str(c) for c in items(get(sc, "capabilities.add"))]
    if "ALL" not in drop:
        problems.append("capabilities.drop does not include ALL")
    if add:
        problems.append(f"capabilities.add adds {', '.join(add)}")
    seccomp = get(sc, "seccompProfile.type") or get(pod, "securityContext.seccompProfile.type")
    if seccomp not in SECCOMP_TYPES:
        problems.append("no RuntimeDefault or Localhost seccompProfile")
    return problems


def token_mounts(pod: Mapping[str, Any]) -> list[str]:
    """How the pod gets a service-account token: automount, or a projected token volume."""
    found = []
    if pod.get("automountServiceAccountToken") is not False:
        found.append("automountServiceAccountToken is not false")
    for v in items(pod.get("volumes")):
        if any(is_map(s) and "serviceAccountToken" in s for s in items(get(v, "projected.sources"))):
            found.append(f"volume {v.get('name')!r} projects a serviceAccountToken")
    return found


def validate_model_servers_hardened(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if not is_gpu_workload(args.resource_type, args.props):
        return
    pod = pod_spec(args.props) or {}
    who = _who(args.resource_type, args.props, args.name)
    for c in containers(pod):
        problems = security_context_problems(pod, c, non_root=True)
        if problems:
            report(
                f"{who}: container {c.get('name')!r} is not hardened: {'; '.join(problems)}. The program renders "
                "all of these for every runtime preset (components/catalog/hardening.py); "
                "runtime_overrides.run_as_user: 0 turns them off. Fix: use an image that runs as a non-root "
                "user and set runtime_overrides.run_as_user to it.",
                None,
            )
    tokens = token_mounts(pod)
    if tokens:
        report(
            f"{who}: the model server pod mounts a service-account token ({'; '.join(tokens)}) although it never "
            "calls the Kubernetes API; a compromised server could use it. Fix: automountServiceAccountToken: false "
            "and no serviceAccountToken volume.",
            None,
        )


def validate_workloads_hardened(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if not _is_workload(args) or is_gpu_workload(args.resource_type, args.props):
        return
    pod = pod_spec(args.props) or {}
    who = _who(args.resource_type, args.props, args.name)
    for c in containers(pod):
        problems = security_context_problems(pod, c, non_root=False)
        if problems:
            report(
                f"{who}: container {c.get('name')!r} is not hardened: {'; '.join(problems)}. Fix: set "
                "securityContext allowPrivilegeEscalation: false, readOnlyRootFilesystem: true (writable paths on "
                "emptyDirs), capabilities.drop: [ALL] and seccompProfile.type: RuntimeDefault.",
                None,
            )


# -- network isolation -------------------------------------------------------------------------

def _namespace(props: Mapping[str, Any]) -> str:
    ns = get(props, "metadata.namespace")
    return ns if isinstance(ns, str) and ns else "default"


def _policy_types(np_props: Mapping[str, Any]) -> set[str]:
    """A NetworkPolicy's policyTypes, defaulted as the API server does (Ingress, plus Egress
    when it has egress rules)."""
    declared = [str(t) for t in items(get(np_props, "spec.policyTypes"))]
    if declared:
        return set(declared)
    return {"Ingress"} | ({"Egress"} if get(np_props, "spec.egress") is not None else set())


def _selects(np_props: Mapping[str, Any], pod_labels: Mapping[str, Any]) -> bool:
    """matchLabels only: a selector with matchExpressions is not counted (it could select less)."""
    selector = get(np_props, "spec.podSelector") or {}
    if items(selector.get("matchExpressions")):
        return False
    wanted = selector.get("matchLabels") or {}
    return all(pod_labels.get(k) == v for k, v in wanted.items())


def validate_network_policies_present(args: StackValidationArgs, report: ReportViolation) -> None:
    policies = [r for r in args.resources if k8s_kind(r.resource_type) == ("networking.k8s.io", "NetworkPolicy")]
    for r in args.resources:
        group, kind = k8s_kind(r.resource_type)
        if group != "apps" or kind not in WORKLOAD_KINDS or pod_spec(r.props) is None:
            continue
        ns = _namespace(r.props)
        pod_labels = get(r.props, "spec.template.metadata.labels") or {}
        covered: set[str] = set()
        for p in policies:
            if _namespace(p.props) == ns and _selects(p.props, pod_labels):
                covered |= _policy_types(p.props)
        missing = [t for t in ("Ingress", "Egress") if t not in covered]
        if missing:
            report(
                f"{kind} {k8s_name(r.props, r.name)!r} (namespace {ns!r}): no NetworkPolicy restricts its pods' "
                f"{' and '.join(missing).lower()} traffic, so any pod in the cluster can reach it (vLLM's admin API, "
                "the picker) or it can reach anything. Fix: the program renders one per model server and picker "
                "(components/network_policies.py); a workload added outside it needs its own.",
                r.urn,
            )


# -- namespaces --------------------------------------------------------------------------------

def validate_namespace_not_default(args: ResourceValidationArgs, report: ReportViolation) -> None:
    group, kind = k8s_kind(args.resource_type)
    if not kind or kind in CLUSTER_SCOPED_KINDS or not is_map(args.props.get("metadata")):
        return
    ns = get(args.props, "metadata.namespace")
    forbidden = list(config(args, "forbidden", SYSTEM_NAMESPACES))
    who = _who(args.resource_type, args.props, args.name)
    fix = "Fix: leave the stack's namespace unset (it defaults to name_prefix) or set namespace to one of the stack's own."
    if not isinstance(ns, str) or not ns:
        report(f"{who}: no metadata.namespace, so it lands in the provider's default namespace (usually 'default'). {fix}", None)
    elif ns in forbidden:
        report(
            f"{who}: namespace {ns!r} is shared with the cluster's own workloads, so NetworkPolicies and Pod Security "
            f"labels cannot be the stack's own. {fix}",
            None,
        )


def validate_namespace_pod_security(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if k8s_kind(args.resource_type) != ("", "Namespace"):
        return
    who = _who(args.resource_type, args.props, args.name)
    level = get(args.props, "metadata.labels", {}).get(ENFORCE_LABEL)
    levels = list(config(args, "levels", ["restricted", "baseline"]))
    if level not in levels:
        shown = "unset" if level is None else repr(level)
        report(
            f"{who}: Pod Security level {ENFORCE_LABEL} is {shown}, so the API server admits pods the stack's "
            f"hardening would refuse. Fix: label it {' or '.join(levels)} (the program's namespace does: restricted "
            "when every workload meets it).",
            None,
        )
    elif level != "restricted" and not get(args.props, "metadata.annotations", {}).get(REASON_ANNOTATION):
        report(
            f"{who}: Pod Security level is {level!r} without saying why in the annotation {REASON_ANNOTATION}. "
            "Fix: name each workload that cannot meet restricted and the reason (the program writes it when "
            "runtime_overrides.run_as_user is 0).",
            None,
        )


# -- the twins ---------------------------------------------------------------------------------

def _where(validate: Validate, production: bool) -> Validate:
    def run(args: Any, report: ReportViolation) -> None:
        if applies_to_environment(args) is production:
            validate(args, report)

    return run


def production_mandatory(name: str, description: str, validate: Validate, severity: Severity,
                         schema: dict[str, Any] | None = None, stack: bool = False) -> list[Any]:
    """``name`` (mandatory where config ``environments`` says: production) and ``name-advisory``
    (advisory in every other stack), both running ``validate``."""
    policy = StackValidationPolicy if stack else ResourceValidationPolicy
    advisory_environments = {
        **ENVIRONMENTS_SCHEMA,
        "description": f"Stack environments where {name} (mandatory) applies; this advisory twin is silent there.",
    }
    return [
        policy(
            name=name,
            description=f"{description} Mandatory in production stacks.",
            validate=_where(validate, True),
            enforcement_level=EnforcementLevel.MANDATORY,
            severity=severity,
            config_schema=PolicyConfigSchema({"environments": ENVIRONMENTS_SCHEMA, **(schema or {})}),
        ),
        policy(
            name=f"{name}-advisory",
            description=f"{description} Advisory outside production stacks.",
            validate=_where(validate, False),
            enforcement_level=EnforcementLevel.ADVISORY,
            severity=severity,
            config_schema=PolicyConfigSchema({"environments": advisory_environments, **(schema or {})}),
        ),
    ]


POLICIES = [
    *production_mandatory(
        "model-servers-hardened",
        "Model servers run non-root, without privilege escalation, with a read-only root filesystem, no "
        "capabilities, a RuntimeDefault seccomp profile and no service-account token.",
        validate_model_servers_hardened, Severity.HIGH,
    ),
    *production_mandatory(
        "workloads-hardened",
        "Other workloads (the endpoint picker) run without privilege escalation, with a read-only root "
        "filesystem, no capabilities and a RuntimeDefault seccomp profile.",
        validate_workloads_hardened, Severity.HIGH,
    ),
    *production_mandatory(
        "network-policies-present",
        "Every workload's pods are selected by NetworkPolicies restricting ingress and egress.",
        validate_network_policies_present, Severity.HIGH, stack=True,
    ),
    *production_mandatory(
        "namespace-not-default",
        "Namespaced objects live in the stack's own namespace, never default or a system namespace.",
        validate_namespace_not_default, Severity.MEDIUM,
        {"forbidden": {"type": "array", "items": {"type": "string"}, "default": SYSTEM_NAMESPACES}},
    ),
    *production_mandatory(
        "namespace-pod-security",
        "Namespaces the stack creates enforce Pod Security restricted, or baseline with the reason annotated.",
        validate_namespace_pod_security, Severity.MEDIUM,
        {"levels": {"type": "array", "items": {"type": "string"}, "default": ["restricted", "baseline"]}},
    ),
]
