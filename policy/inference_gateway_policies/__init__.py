"""inference-gateway guardrails: the policies of the `policy/` pack, importable without the engine.

`policy/__main__.py` builds the PolicyPack from `POLICIES`; `igw policy` runs the same policy
objects offline over `igw synth` output (igw/policy_checks.py); tests call them directly with
`ResourceValidationArgs` / `StackValidationArgs` built from rendered resources.
"""

from . import gke, hardening, request_path, routing, workloads
from .drain import DrainInputs, drain_seconds

PACK_NAME = "inference-gateway-guardrails"
PACK_DESCRIPTION = (
    "GKE Inference Gateway guardrails: cluster version and networking, H100 pools, model-server probes "
    "and drain, endpoint pickers, gateway classes, proxy-only subnets, Model Armor, secrets, request path "
    "(no admin routes, control headers stripped, trusted rate-limit identities), hardened workloads (pod "
    "security, NetworkPolicies, the stack's own namespace)."
)

POLICIES = [*gke.POLICIES, *workloads.POLICIES, *hardening.POLICIES, *routing.POLICIES, *request_path.POLICIES]
"""Every policy, in the order reports list them."""

__all__ = ["PACK_NAME", "PACK_DESCRIPTION", "POLICIES", "DrainInputs", "drain_seconds"]
