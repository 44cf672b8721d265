"""The policy pack entry point: builds the PolicyPack and nothing else (after one config shim).

`PolicyPack(...)` starts the analyzer's gRPC server and blocks forever, so it may only be created
here. The policies live in `inference_gateway_policies` (importable by tests and `igw policy`).
"""

import sys
from pathlib import Path

# Run from a checkout, the drain formula comes from components/builders/grace.py (the program's
# own copy); a published pack has no checkout and uses the package's identical fallback.
_REPO = Path(__file__).resolve().parent.parent
if (_REPO / "components").is_dir():
    sys.path.append(str(_REPO))

from pulumi_policy import EnforcementLevel, PolicyPack  # noqa: E402

from inference_gateway_policies import PACK_DESCRIPTION, PACK_NAME, POLICIES  # noqa: E402
from inference_gateway_policies.stack_config import remember_stack_config  # noqa: E402

remember_stack_config()
PolicyPack(
    name=PACK_NAME,
    description=PACK_DESCRIPTION,
    policies=POLICIES,
    enforcement_level=EnforcementLevel.MANDATORY,
)
