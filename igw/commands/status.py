"""igw status --stack NAME [--json] [--kubeconfig FILE [--context C] [--token T] [--namespace NS]]

Seed 004's endpoint state: per endpoint (served model) READY / NOT_READY and its config update
state, per served entity its deployment state and message. Without --kubeconfig it reads the
stack running locally (`igw up`); with it, the cluster (GKE): Deployments, the pickers and the
InferencePools' status conditions in the stack's namespace. Exit code 0 when every endpoint is
READY, 3 when one is not (for scripts; --json prints the whole report).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

NOT_READY_EXIT = 3


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="endpoint state: READY / NOT_READY per endpoint, deployment state per served model",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stack", required=True)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--state-dir", type=Path, default=None, help="a local stack's state dir (default .igw/local/<stack>)")
    p.add_argument("--kubeconfig", type=Path, default=None, help="read the cluster this kubeconfig names instead")
    p.add_argument("--context", default=None, help="kubeconfig context (default: its current context)")
    p.add_argument("--token", default=None, help="bearer token (GKE: \"$(gcloud auth print-access-token)\")")
    p.add_argument("--namespace", default=None, help="the stack's namespace (default: from the stack file)")
    p.add_argument("--stacks-dir", type=Path, default=None, help="where Pulumi.<stack>.yaml files live (default stacks/)")
    p.set_defaults(run=run)


def _namespace(args: argparse.Namespace) -> str:
    if args.namespace:
        return args.namespace
    from ..stackfile import STACKS_DIR, validate_stack

    return validate_stack(args.stack, args.stacks_dir or STACKS_DIR).namespace


def run(args: argparse.Namespace) -> int:
    from ..endpoint_state import READY, report_text

    try:
        if args.kubeconfig is not None:
            from ..kube.status_source import client_from_kubeconfig, cluster_report

            with client_from_kubeconfig(args.kubeconfig, args.context, args.token) as client:
                report = cluster_report(args.stack, client, _namespace(args))
        else:
            from ..local.state import default_state_dir
            from ..local.status_source import local_report

            report = local_report(args.stack, (args.state_dir or default_state_dir(args.stack)).resolve())
    except (RuntimeError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2) if args.json else report_text(report))
    ready = all(e["state"]["ready"] == READY for e in report["endpoints"])
    return 0 if ready else NOT_READY_EXIT
