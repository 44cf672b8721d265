"""From rendered Kubernetes objects to what runs locally: a LocalPlan (pure, no processes).

Read: Gateways (listeners), HTTPRoutes (matches, URLRewrite, RequestHeaderModifier, weighted
backendRefs to InferencePools, timeouts), InferencePools (selector, targetPorts,
endpointPickerRef incl. failureMode), the picker ConfigMap `<pool>-epp` (key `picker.yaml`),
GCPBackendPolicy (default.timeoutSec → route timeout), Deployments whose pod labels a pool
selects (one simulated replica each, vLLM args translated), their LoRA ConfigMap
(`vLLMLoRAConfig.ensureExist.models`). Everything else is listed as skipped with the reason.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from components.builders.inference_pool import MESSAGE_TIMEOUT_ANNOTATION

from .egress_pods import EGRESS_RUNTIME, egress_args
from .picker_deployment import PickerDeployment
from .runtime_pods import runtime_pod

POOL_GROUP = "inference.networking.k8s.io"
POOL_KIND = "InferencePool"
DEFAULT_BACKEND_TIMEOUT_S = 30.0  # GCPBackendPolicy default.timeoutSec default
DEFAULT_MESSAGE_TIMEOUT_S = 1.0  # without the pool annotation: GKE's own callout default (1000 ms)

# Objects a local run uses (or that only configure the cluster itself) → not listed as skipped.
_USED_KINDS = {"Gateway", "HTTPRoute", "InferencePool", "InferenceObjective", "InferenceModelRewrite",
               "GCPBackendPolicy", "Deployment", "ConfigMap",
               "ScaledObject"}  # KEDA's: its policy runs on the replica processes (autoscaler.py)
# Kinds that have no local meaning: why they are skipped.
_SKIP_REASONS = {
    "GCPTrafficExtension": "Model Armor / traffic extension runs in Google's load balancer (cloud-only)",
    "GCPRoutingExtension": "routing extension runs in Google's load balancer (cloud-only)",
    "HealthCheckPolicy": "load-balancer health checks are cloud-only; locally the runner probes "
                         "each replica's readinessProbe and the picker scrapes /metrics",
    "GCPGatewayPolicy": "load-balancer policy (cloud-only)",
    "PodMonitoring": "Managed Prometheus (cloud-only); scrape /metrics on each replica directly",
    "TriggerAuthentication": "KEDA's access to Managed Prometheus (cloud-only); locally the autoscaler reads "
                             "the replicas' and pickers' /metrics",
    "CustomResourceDefinition": "no API server locally; the pickers read the objects from files",
    "ServiceAccount": "Kubernetes RBAC and credentials: no API server locally",
    "Secret": "Kubernetes RBAC and credentials: no API server locally",
    "Role": "Kubernetes RBAC and credentials: no API server locally",
    "RoleBinding": "Kubernetes RBAC and credentials: no API server locally",
    "ClusterRole": "Kubernetes RBAC and credentials: no API server locally",
    "ClusterRoleBinding": "Kubernetes RBAC and credentials: no API server locally",
}
_PICKER_REPLACED = "runs locally as a `picker` process per pool (file discovery)"


class PlanError(ValueError):
    """The rendered objects cannot be run locally (the message says which object and why)."""


@dataclass(frozen=True)
class HeaderMatch:
    name: str
    value: str
    type: str = "Exact"  # Exact | RegularExpression


@dataclass(frozen=True)
class RouteEntry:
    """One HTTPRoute rule x one of its matches (Envoy route), in Gateway API precedence order."""

    route: str                  # namespace/name of the HTTPRoute
    rule: int
    path_type: str              # Exact | PathPrefix | RegularExpression
    path: str
    headers: tuple[HeaderMatch, ...] = ()
    method: str | None = None
    rewrite_prefix: str | None = None   # URLRewrite ReplacePrefixMatch
    rewrite_full: str | None = None     # URLRewrite ReplaceFullPath
    rewrite_host: str | None = None
    set_headers: tuple[tuple[str, str], ...] = ()
    add_headers: tuple[tuple[str, str], ...] = ()
    remove_headers: tuple[str, ...] = ()
    backends: tuple[tuple[str, int], ...] = ()  # (pool name, weight)
    query: tuple[HeaderMatch, ...] = ()
    response_set: tuple[tuple[str, str], ...] = ()
    response_add: tuple[tuple[str, str], ...] = ()
    response_remove: tuple[str, ...] = ()
    timeout_s: float | None = None      # HTTPRoute timeouts.request
    hostnames: tuple[str, ...] = ()


@dataclass(frozen=True)
class Listener:
    gateway: str
    name: str
    port: int                   # the Gateway's port
    local_port: int             # where Envoy listens
    protocol: str
    routes: tuple[RouteEntry, ...]


@dataclass
class Replica:
    name: str                   # pod name
    deployment: str
    address: str                # 127.0.1.x
    ports: tuple[int, ...]      # one per pool targetPort
    labels: dict[str, str]
    model: str
    adapters: list[tuple[str, str]]      # (id, source)
    args: list[str]             # vllm-sim argv (without --time-scale, added at start)
    readiness_path: str = "/health"
    runtime: str = "vllm"       # the API it speaks (runtime_pods.py for seed 003's others)
    grpc_port: int | None = None    # a runtime's gRPC port (ports[0] is its HTTP port then)
    models: tuple[str, ...] = ()    # a runtime's models (vLLM: model + adapters)


@dataclass
class Pool:
    name: str
    namespace: str
    selector: dict[str, str]
    target_ports: tuple[int, ...]
    failure_mode: str           # FailOpen | FailClose
    picker_config: dict[str, Any]
    timeout_s: float
    replicas: list[Replica] = field(default_factory=list)
    api_keys: bool = False      # its picker Deployment requires API keys (--api-keys-file)
    message_timeout_s: float = DEFAULT_MESSAGE_TIMEOUT_S   # per picker answer (pool annotation)
    app_protocol: str = "http"  # spec.appProtocol: kubernetes.io/h2c = HTTP/2 (gRPC) to the pods
    picker: PickerDeployment = field(default_factory=PickerDeployment)

    @property
    def fail_open(self) -> bool:
        return self.failure_mode == "FailOpen"

    def ext_proc_modes(self) -> tuple[str, str]:
        """(request, response) body modes shared by Envoy's filter and the picker, measured on
        Envoy 1.40 with the picker killed (SIGKILL) or frozen (SIGSTOP) mid-request:

        * request BUFFERED: Envoy keeps the body, so a FailOpen pool can continue without the
          picker, and `message_timeout` bounds a frozen picker (FailOpen: the request goes on
          without it; FailClose: 503). With FULL_DUPLEX_STREAMED Envoy holds no copy once a chunk
          went to the picker (envoyproxy/envoy#41276) and waited forever on a frozen one.
        * response STREAMED: Envoy keeps each chunk until the picker answers it, so when the picker
          dies or freezes mid-response a FailOpen pool forwards the rest unchanged (a frozen one
          costs one message timeout). With FULL_DUPLEX_STREAMED every stream in flight was cut.
        """
        return "BUFFERED", "STREAMED"

    def local_picker_config(self) -> dict[str, Any]:
        """The rendered picker.yaml with the body modes this runner's Envoy uses."""
        req, resp = self.ext_proc_modes()
        cfg = dict(self.picker_config)
        cfg["ext_proc"] = {**(cfg.get("ext_proc") or {}), "request_body_mode": req, "response_body_mode": resp}
        return cfg


@dataclass
class ServedModel:
    name: str
    pool: str
    priority: int | None
    criticality: str
    targets: list[tuple[str, int]]      # rewrite targets (model, weight); empty = served as is


@dataclass
class LocalPlan:
    listeners: list[Listener]
    pools: dict[str, Pool]
    models: list[ServedModel]
    skipped: list[tuple[str, str]]      # ("Kind namespace/name", reason)
    objects: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)

    @property
    def replicas(self) -> list[Replica]:
        """Every model-server pod once (a runtime's REST and gRPC pools select the same pods)."""
        return list({r.name: r for p in self.pools.values() for r in p.replicas}.values())


def load_manifests(directory: Path) -> list[dict[str, Any]]:
    objs: list[dict[str, Any]] = []
    for f in sorted(Path(directory).rglob("*")):
        if f.suffix in (".yaml", ".yml", ".json") and f.is_file():
            for doc in yaml.safe_load_all(f.read_text()):
                if isinstance(doc, dict) and doc.get("kind"):
                    if doc["kind"] == "List":
                        objs.extend(i for i in doc.get("items") or [] if isinstance(i, dict))
                    else:
                        objs.append(doc)
    return objs


def _meta(o: dict[str, Any]) -> tuple[str, str]:
    m = o.get("metadata") or {}
    return m.get("namespace") or "default", m.get("name", "")


def _ref(o: dict[str, Any]) -> str:
    m = o.get("metadata") or {}
    ns = m.get("namespace")
    return f"{o.get('kind')} {ns + '/' if ns else ''}{m.get('name', '')}"


def _seconds(v: Any) -> float | None:
    """Gateway API duration ('300s', '1m', '1h30m', '500ms') → seconds."""
    if v is None:
        return None
    s, total, num = str(v), 0.0, ""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    i = 0
    while i < len(s):
        c = s[i]
        if c.isdigit() or c == ".":
            num += c
            i += 1
            continue
        unit = "ms" if s[i:i + 2] == "ms" else c
        if unit not in units or not num:
            raise PlanError(f"bad duration {v!r}")
        total += float(num) * units[unit]
        num = ""
        i += len(unit)
    if num:
        raise PlanError(f"bad duration {v!r} (missing unit)")
    return total


# --------------------------------------------------------------------------- model servers

_DROP_FLAGS_WITH_VALUE = {"--host", "--port", "--lora-modules", "--uvicorn-log-level", "--download-dir"}


def sim_args(container: dict[str, Any]) -> tuple[str, list[str]]:
    """vLLM container command/args → (model, vllm-sim argv). Flags the simulator does not know are
    passed through (it ignores them with a note); --host/--port are set per replica."""
    argv = [str(a) for a in (container.get("args") or [])]
    cmd = [str(c) for c in (container.get("command") or [])]
    # `vllm serve MODEL ...` in command or args
    for seq in (cmd, argv):
        if "serve" in seq:
            i = seq.index("serve")
            rest = seq[i + 1:]
            if rest and not rest[0].startswith("-"):
                argv = ["--model", rest[0]] + (argv if seq is cmd else rest[1:])
            break
    out: list[str] = []
    model = "meta-llama/Llama-3.1-8B-Instruct"
    i = 0
    while i < len(argv):
        a = argv[i]
        key, eq, val = a.partition("=")
        takes_value = not eq and i + 1 < len(argv) and not argv[i + 1].startswith("--")
        if key in _DROP_FLAGS_WITH_VALUE:
            if key == "--lora-modules":  # several values
                i += 1
                while i < len(argv) and not argv[i].startswith("--"):
                    i += 1
                continue
            i += 1 if eq else 2
            continue
        if key == "--model":
            model = val if eq else (argv[i + 1] if takes_value else model)
        out.append(a)
        if takes_value:
            out.append(argv[i + 1])
            i += 2
        else:
            i += 1
    if "--model" not in [a.partition("=")[0] for a in out]:
        out = ["--model", model] + out
    return model, out


def _lora_configmap(objs: dict[tuple[str, str, str], dict[str, Any]], ns: str, pod_spec: dict[str, Any]) -> list[tuple[str, str]]:
    names = [v["configMap"]["name"] for v in pod_spec.get("volumes") or [] if isinstance(v.get("configMap"), dict)]
    adapters: list[tuple[str, str]] = []
    for name in names:
        cm = objs.get(("ConfigMap", ns, name))
        if not cm:
            continue
        for raw in (cm.get("data") or {}).values():
            try:
                doc = yaml.safe_load(raw)
            except yaml.YAMLError:
                continue
            cfg = (doc or {}).get("vLLMLoRAConfig") if isinstance(doc, dict) else None
            if not isinstance(cfg, dict):
                continue
            for m in ((cfg.get("ensureExist") or {}).get("models") or []):
                if isinstance(m, dict) and m.get("id"):
                    adapters.append((str(m["id"]), str(m.get("source") or m["id"])))
    return adapters


def _container_ports(container: dict[str, Any]) -> list[int]:
    return [int(p["containerPort"]) for p in container.get("ports") or [] if p.get("containerPort")]


def _readiness_path(container: dict[str, Any]) -> str:
    probe = (container.get("readinessProbe") or {}).get("httpGet") or {}
    return str(probe.get("path") or "/health")


# --------------------------------------------------------------------------- routes

def _route_entries(route: dict[str, Any], pools: dict[str, Pool], problems: list[str]) -> list[RouteEntry]:
    ns, name = _meta(route)
    spec = route.get("spec") or {}
    hostnames = tuple(spec.get("hostnames") or ())
    out = []
    for ri, rule in enumerate(spec.get("rules") or []):
        backends = []
        for b in rule.get("backendRefs") or []:
            kind, group = b.get("kind", "Service"), b.get("group", "")
            if kind != POOL_KIND or group != POOL_GROUP:
                problems.append(f"HTTPRoute {ns}/{name} rule {ri}: backend {kind} {b.get('name')} is not an "
                                f"InferencePool ({POOL_GROUP}); only pools run locally")
                continue
            if b.get("name") not in pools:
                problems.append(f"HTTPRoute {ns}/{name} rule {ri}: InferencePool {b.get('name')!r} not found")
                continue
            backends.append((str(b["name"]), int(b.get("weight", 1))))
        rw_prefix = rw_full = rw_host = None
        rsets: list[tuple[str, str]] = []
        radds: list[tuple[str, str]] = []
        rremoves: list[str] = []
        sets: list[tuple[str, str]] = []
        adds: list[tuple[str, str]] = []
        removes: list[str] = []
        for f in rule.get("filters") or []:
            t = f.get("type")
            if t == "URLRewrite":
                u = f.get("urlRewrite") or {}
                rw_host = u.get("hostname") or rw_host
                p = u.get("path") or {}
                if p.get("type") == "ReplacePrefixMatch":
                    rw_prefix = p.get("replacePrefixMatch", "/")
                elif p.get("type") == "ReplaceFullPath":
                    rw_full = p.get("replaceFullPath", "/")
            elif t == "RequestHeaderModifier":
                m = f.get("requestHeaderModifier") or {}
                sets += [(h["name"], str(h["value"])) for h in m.get("set") or []]
                adds += [(h["name"], str(h["value"])) for h in m.get("add") or []]
                removes += list(m.get("remove") or [])
            elif t == "ResponseHeaderModifier":
                m = f.get("responseHeaderModifier") or {}
                rsets += [(h["name"], str(h["value"])) for h in m.get("set") or []]
                radds += [(h["name"], str(h["value"])) for h in m.get("add") or []]
                rremoves += list(m.get("remove") or [])
            else:
                problems.append(f"HTTPRoute {ns}/{name} rule {ri}: filter {t} is not supported locally")
        timeout = _seconds((rule.get("timeouts") or {}).get("request"))
        matches = rule.get("matches") or [{"path": {"type": "PathPrefix", "value": "/"}}]
        for m in matches:
            path = m.get("path") or {"type": "PathPrefix", "value": "/"}
            out.append(RouteEntry(
                route=f"{ns}/{name}", rule=ri, path_type=path.get("type", "PathPrefix"), path=path.get("value", "/"),
                headers=tuple(HeaderMatch(h["name"], str(h["value"]), h.get("type", "Exact")) for h in m.get("headers") or []),
                method=m.get("method"), rewrite_prefix=rw_prefix, rewrite_full=rw_full, rewrite_host=rw_host,
                set_headers=tuple(sets), add_headers=tuple(adds), remove_headers=tuple(removes),
                backends=tuple(backends), timeout_s=timeout, hostnames=hostnames,
                query=tuple(HeaderMatch(q["name"], str(q["value"]), q.get("type", "Exact")) for q in m.get("queryParams") or []),
                response_set=tuple(rsets), response_add=tuple(radds), response_remove=tuple(rremoves),
            ))
    return out


def precedence(e: RouteEntry) -> tuple:
    """Gateway API order: exact path, longest prefix, method, most headers, then declaration."""
    return (
        0 if e.path_type == "Exact" else 1 if e.path_type == "PathPrefix" else 2,
        -len(e.path),
        0 if e.method else 1,
        -len(e.headers),
        -len(e.query),
        e.route,
        e.rule,
    )


# --------------------------------------------------------------------------- plan

def build_plan(objects: list[dict[str, Any]], *, port: int = 8080, address_base: str = "127.0.1.10") -> LocalPlan:
    """Translate rendered objects. `port` serves the first HTTP listener (Gateway port 80 by
    convention); further listeners get port+1, port+2, ... Replicas get consecutive loopback
    addresses from `address_base`."""
    objs = {(o["kind"], *_meta(o)): o for o in objects}
    problems: list[str] = []
    skipped: list[tuple[str, str]] = []

    # pools + picker config + timeouts
    pools: dict[str, Pool] = {}
    for o in objects:
        if o.get("kind") != POOL_KIND:
            continue
        ns, name = _meta(o)
        spec = o.get("spec") or {}
        sel = (spec.get("selector") or {}).get("matchLabels") or {}
        epp = spec.get("endpointPickerRef") or {}
        cm = objs.get(("ConfigMap", ns, f"{epp.get('name', name + '-epp')}")) or objs.get(("ConfigMap", ns, f"{name}-epp"))
        picker_cfg: dict[str, Any] = {}
        if cm is not None:
            raw = (cm.get("data") or {}).get("picker.yaml")
            if raw:
                picker_cfg = yaml.safe_load(raw) or {}
        else:
            problems.append(f"InferencePool {ns}/{name}: picker ConfigMap {epp.get('name', name + '-epp')} "
                            "(key picker.yaml) not found; the picker runs with its defaults")
        annotations = (o.get("metadata") or {}).get("annotations") or {}
        pools[name] = Pool(
            message_timeout_s=_seconds(annotations.get(MESSAGE_TIMEOUT_ANNOTATION)) or DEFAULT_MESSAGE_TIMEOUT_S,
            app_protocol=str(spec.get("appProtocol") or "http"),
            name=name, namespace=ns, selector={str(k): str(v) for k, v in sel.items()},
            target_ports=tuple(int(p["number"]) for p in spec.get("targetPorts") or [] if "number" in p) or (8000,),
            failure_mode=str(epp.get("failureMode") or "FailClose"),
            picker_config=picker_cfg, timeout_s=DEFAULT_BACKEND_TIMEOUT_S,
        )
    for o in objects:
        if o.get("kind") == "GCPBackendPolicy":
            ref = (o.get("spec") or {}).get("targetRef") or {}
            t = ((o.get("spec") or {}).get("default") or {}).get("timeoutSec")
            if ref.get("kind") == POOL_KIND and ref.get("name") in pools and t is not None:
                pools[ref["name"]].timeout_s = float(t)

    picker_refs_by_pool = {p.name: str(((objs.get((POOL_KIND, p.namespace, p.name)) or {}).get("spec") or {})
                                       .get("endpointPickerRef", {}).get("name") or f"{p.name}-epp") for p in pools.values()}
    picker_refs = {(p.namespace, picker_refs_by_pool[p.name]) for p in pools.values()}

    # replicas: Deployments whose pod template labels a pool selects
    addr = ipaddress.IPv4Address(address_base)
    used_cms: set[str] = set()
    for o in objects:
        if o.get("kind") != "Deployment":
            continue
        ns, dname = _meta(o)
        tmpl = ((o.get("spec") or {}).get("template") or {})
        labels = {str(k): str(v) for k, v in ((tmpl.get("metadata") or {}).get("labels") or {}).items()}
        selecting = [p for p in pools.values()
                     if p.namespace == ns and p.selector and all(labels.get(k) == v for k, v in p.selector.items())]
        pool = selecting[0] if selecting else None
        if pool is None:
            if (ns, dname) in picker_refs:
                skipped.append((_ref(o), _PICKER_REPLACED))
                for p in pools.values():
                    if (p.namespace, picker_refs_by_pool[p.name]) == (ns, dname):
                        p.picker = PickerDeployment.from_manifest(o)
                args = [str(a) for c in (tmpl.get("spec") or {}).get("containers") or [] for a in c.get("args") or []]
                if any(a.startswith("--api-keys-file") for a in args):
                    # The Secret is masked offline: `igw up` takes the keys from a local source
                    # (igw/local/secrets.py) and refuses to start the pool without them.
                    for keyed in pools.values():
                        ref = (((objs.get((POOL_KIND, keyed.namespace, keyed.name)) or {}).get("spec") or {})
                               .get("endpointPickerRef") or {}).get("name") or f"{keyed.name}-epp"
                        if (keyed.namespace, str(ref)) == (ns, dname):
                            keyed.api_keys = True
            else:
                skipped.append((_ref(o), "not selected by any InferencePool (only model servers run locally)"))
            continue
        pod_spec = tmpl.get("spec") or {}
        containers = pod_spec.get("containers") or []
        target_ports = [t for p in selecting for t in p.target_ports]
        port_set = set(target_ports)
        main = next((c for c in containers if {int(p.get("containerPort", 0)) for p in c.get("ports") or []} & port_set),
                    containers[0] if containers else None)
        if main is None:
            problems.append(f"Deployment {ns}/{dname}: no containers")
            continue
        try:
            runtime = runtime_pod(tmpl.get("metadata") or {}, main)
            # An external model's egress proxy runs its mounted Envoy config (egress_pods.py).
            egress = egress_args(objs, ns, tmpl.get("metadata") or {}, pod_spec) \
                if runtime is not None and runtime.runtime == EGRESS_RUNTIME else None
        except ValueError as e:
            problems.append(f"Deployment {ns}/{dname}: {e}; it does not run locally")
            continue
        model, args = (runtime.models[0], egress or list(runtime.args)) if runtime else sim_args(main)
        declared = _container_ports(main)
        # The replica listens where the container does; the pools reach it on targetPorts. As in
        # a cluster, a targetPort no container declares gets nothing, so say so.
        ports = runtime.ports if runtime else (
            tuple(dict.fromkeys(p for p in target_ports if p in declared)) or tuple(declared[:1]) or tuple(target_ports))
        for p in selecting:
            missing = [t for t in p.target_ports if declared and t not in declared]
            if missing:
                problems.append(f"InferencePool {p.namespace}/{p.name} targetPorts {missing} are not containerPorts "
                                f"of Deployment {ns}/{dname} ({declared}); the pool cannot reach them")
        adapters = _lora_configmap(objs, ns, pod_spec)
        used_cms.update(v["configMap"]["name"] for v in pod_spec.get("volumes") or [] if isinstance(v.get("configMap"), dict))
        n = int((o.get("spec") or {}).get("replicas", 1))
        for i in range(n):
            replica = Replica(
                name=f"{dname}-{i}", deployment=dname, address=str(addr), ports=ports,
                labels=labels, model=model, adapters=adapters, args=args, readiness_path=_readiness_path(main),
                runtime=runtime.runtime if runtime else "vllm", grpc_port=runtime.grpc_port if runtime else None,
                models=runtime.models if runtime else (),
            )
            for p in selecting:
                p.replicas.append(replica)
            addr += 1
        others = [c.get("name") for c in containers if c is not main] + \
                 [c.get("name") for c in pod_spec.get("initContainers") or []]
        if others:
            skipped.append((f"{_ref(o)} containers {', '.join(map(str, others))}",
                            "sidecars are not run; LoRA adapters are preloaded with --lora-modules"))

    # listeners and routes
    routes_by_parent: dict[tuple[str, str | None], list[RouteEntry]] = {}
    for o in objects:
        if o.get("kind") != "HTTPRoute":
            continue
        entries = _route_entries(o, pools, problems)
        ns, _ = _meta(o)
        for pr in (o.get("spec") or {}).get("parentRefs") or []:
            if pr.get("kind", "Gateway") != "Gateway":
                continue
            key = (f"{pr.get('namespace') or ns}/{pr['name']}", pr.get("sectionName"))
            routes_by_parent.setdefault(key, []).extend(entries)
    listeners: list[Listener] = []
    next_port = port
    for o in objects:
        if o.get("kind") != "Gateway":
            continue
        ns, gname = _meta(o)
        for lst in (o.get("spec") or {}).get("listeners") or []:
            proto = lst.get("protocol", "HTTP")
            if proto != "HTTP":
                skipped.append((f"{_ref(o)} listener {lst.get('name')} ({proto}:{lst.get('port')})",
                                "TLS certificates are cloud-only; use the HTTP listener locally"))
                continue
            entries = routes_by_parent.get((f"{ns}/{gname}", None), []) + \
                routes_by_parent.get((f"{ns}/{gname}", lst.get("name")), [])
            listeners.append(Listener(gateway=f"{ns}/{gname}", name=str(lst.get("name")), port=int(lst.get("port", 80)),
                                      local_port=next_port, protocol=proto,
                                      routes=tuple(sorted(entries, key=precedence))))
            next_port += 1

    # served models (for the summary): objectives + rewrites
    models: list[ServedModel] = []
    rewrites: dict[tuple[str, str], list[tuple[str, int]]] = {}
    for o in objects:
        if o.get("kind") == "InferenceModelRewrite":
            pool = ((o.get("spec") or {}).get("poolRef") or {}).get("name", "")
            for rule in (o.get("spec") or {}).get("rules") or []:
                targets = [(str(t["modelRewrite"]), int(t.get("weight", 1))) for t in rule.get("targets") or []
                           if t.get("modelRewrite")]
                for m in rule.get("matches") or []:
                    v = (m.get("model") or {}).get("value")
                    if v:
                        rewrites[(pool, v)] = targets
    for o in objects:
        if o.get("kind") == "InferenceObjective":
            _, oname = _meta(o)
            spec = o.get("spec") or {}
            pool = (spec.get("poolRef") or {}).get("name", "")
            model = ((o.get("metadata") or {}).get("annotations") or {}).get("inference-gateway.dev/model") or oname
            prio = spec.get("priority")
            crit = "Sheddable" if prio is not None and prio < 0 else "Critical" if prio is not None and prio > 0 else "Standard"
            models.append(ServedModel(model, pool, prio, crit, rewrites.get((pool, model), [])))

    for o in objects:
        kind = o.get("kind", "")
        ns, name = _meta(o)
        if kind in _SKIP_REASONS:
            skipped.append((_ref(o), _SKIP_REASONS[kind]))
        elif kind == "ConfigMap" and name not in used_cms and not any(name == f"{p}-epp" for p in pools):
            skipped.append((_ref(o), "not read by a local process"))
        elif kind == "Service" and (ns, name) in picker_refs:
            skipped.append((_ref(o), _PICKER_REPLACED))
        elif kind not in _USED_KINDS:
            skipped.append((_ref(o), "cluster object: nothing to run locally"))
    if not pools:
        raise PlanError("no InferencePool in the rendered objects: nothing to run locally")
    if not listeners:
        raise PlanError("no Gateway with an HTTP listener in the rendered objects")
    return LocalPlan(listeners=listeners, pools=pools, models=models, skipped=skipped, objects=objects,
                     warnings=problems)


def cloud_resources(resources_json: Path) -> list[tuple[str, str]]:
    """Non-Kubernetes resources of a render (resources.json next to manifests/): the GCP side
    (network, cluster, node pools, Model Armor, IAM, monitoring), none of which runs locally.
    Returns skipped entries grouped by resource type."""
    import json
    from collections import Counter

    try:
        resources = json.loads(Path(resources_json).read_text())
    except (OSError, ValueError):
        return []
    counts = Counter(r.get("type", "") for r in resources if str(r.get("type", "")).startswith("gcp:"))
    if not counts:
        return []
    listed = ", ".join(f"{t.split(':')[-1]} x{n}" if n > 1 else t.split(":")[-1] for t, n in sorted(counts.items()))
    return [(f"{sum(counts.values())} GCP resources ({listed})",
             "cloud-only: Google Cloud infrastructure (network, GKE, node pools, Model Armor, IAM, monitoring)")]
