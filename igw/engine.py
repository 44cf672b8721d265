"""One mock engine for `igw synth` and the component tests.

It runs the unchanged Pulumi program (`__main__.py`) under `pulumi.runtime.set_mocks`, with the
stack's config, and records every resource registration: URN, type, name, parent, dependencies
and inputs (secret values masked, ints restored from the wire's floats). Computed outputs that
the program reads (cluster endpoint, template names, project number, image digest...) are given
plausible, deterministic values so two renders of the same stack are identical.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import runpy
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from google.protobuf import json_format
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import settings as pulumi_settings

ROOT = Path(__file__).resolve().parent.parent
PROGRAM = ROOT / "__main__.py"
PROJECT = "inference-gateway"
MOCK_PROJECT_NUMBER = "123456789012"
SECRET = "[secret]"

_SIG = "4dabf18193072939515e22adb298388d"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
_RESOURCE_SIG = "5cf8f73096256a8f31e491e813e4eb8e"
_OUTPUT_SIG = "d0e6a833031e9bbcd3f4e8bde6ca49a4"
_UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"


@dataclass
class Resource:
    urn: str
    type: str
    name: str
    parent: str
    custom: bool
    inputs: dict[str, Any]
    dependencies: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"urn": self.urn, "type": self.type, "name": self.name, "parent": self.parent, "inputs": self.inputs}


@dataclass
class Synthesis:
    stack: str
    resources: list[Resource]
    outputs: dict[str, Any]

    def of_type(self, type_: str) -> list[Resource]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str, name: str | None = None) -> Resource:
        found = [r for r in self.of_type(type_) if name is None or r.name == name]
        if len(found) != 1:
            names = [r.name for r in self.of_type(type_)]
            raise LookupError(f"expected one {type_} named {name!r}, found {len(found)} (have {names})")
        return found[0]

    def by_urn(self, urn: str) -> Resource:
        return next(r for r in self.resources if r.urn == urn)

    def kubernetes_objects(self) -> list[dict[str, Any]]:
        """Every Kubernetes object the program declares, as a plain manifest."""
        objs = []
        for r in self.resources:
            if r.custom and r.type.startswith("kubernetes:") and not r.type.startswith("kubernetes:index:") and not r.type.startswith("pulumi:providers:"):
                if "kind" in r.inputs and "apiVersion" in r.inputs:
                    objs.append(manifest_of(r.inputs))
        return objs


def manifest_of(inputs: dict[str, Any]) -> dict[str, Any]:
    order = ["apiVersion", "kind", "metadata"]
    obj = {k: inputs[k] for k in order if k in inputs}
    obj.update({k: v for k, v in inputs.items() if k not in order})
    return obj


def _masked(value: Any) -> Any:
    """A secret's shape with every value masked: a secret map keeps its keys (a Secret's
    ``stringData: {token: '[secret]'}`` stays an appliable object), no value survives."""
    if isinstance(value, dict) and value.get(_SIG) in (_SECRET_SIG, _OUTPUT_SIG):
        return _masked(value.get("value"))
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return SECRET


def _plain(value: Any) -> Any:
    """Wire value (a JSON-ish dict from the protobuf Struct) -> what a user wrote, secrets masked."""
    if isinstance(value, dict):
        sig = value.get(_SIG)
        if sig == _SECRET_SIG:
            return _masked(value.get("value"))
        if sig == _RESOURCE_SIG:
            return value.get("urn")
        if sig == _OUTPUT_SIG:
            if value.get("secret"):
                return _masked(value.get("value"))
            return _plain(value["value"]) if "value" in value else "[unknown]"
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if value == _UNKNOWN:
        return "[unknown]"
    return value


class PlatformMocks(pulumi.runtime.Mocks):
    """Plausible outputs for what the program reads back from GCP and Kubernetes."""

    def __init__(self, project: str = "mock-project"):
        self.project = project

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        inputs = dict(args.inputs)
        t = args.typ
        name = inputs.get("name") or args.name
        project = inputs.get("project") or self.project
        out: dict[str, Any] = dict(inputs)
        out.setdefault("name", name)
        rid = f"{name}-id"
        if t.startswith("kubernetes:") and not t.startswith("pulumi:providers:"):
            meta = dict(inputs.get("metadata") or {})
            meta.setdefault("name", args.name)
            out["metadata"] = meta
            out.pop("name", None)
            rid = f"{meta.get('namespace', 'default')}/{meta['name']}"
        elif t == "gcp:container/cluster:Cluster":
            location = inputs.get("location", "us-central1")
            out.update(
                endpoint="203.0.113.10",
                masterAuth={"clusterCaCertificate": "TU9DSy1DQQ==", "clientCertificate": "", "clientKey": ""},
                masterVersion=inputs.get("minMasterVersion", "1.32.3"),
                selfLink=f"https://container.googleapis.com/v1/projects/{project}/locations/{location}/clusters/{name}",
            )
            rid = f"projects/{project}/locations/{location}/clusters/{name}"
        elif t in ("gcp:compute/network:Network", "gcp:compute/subnetwork:Subnetwork", "gcp:compute/router:Router"):
            kind = {"Network": "networks", "Subnetwork": "subnetworks", "Router": "routers"}[t.rsplit(":", 1)[1]]
            scope = "global" if kind == "networks" else f"regions/{inputs.get('region', 'us-central1')}"
            rid = f"projects/{project}/{scope}/{kind}/{name}"
            out["selfLink"] = f"https://www.googleapis.com/compute/v1/{rid}"
        elif t == "gcp:modelarmor/template:Template":
            rid = f"projects/{project}/locations/{inputs.get('location')}/templates/{inputs.get('templateId')}"
            out["name"] = rid
        elif t == "gcp:artifactregistry/repository:Repository":
            location = inputs.get("location", "us-central1")
            rid = f"projects/{project}/locations/{location}/repositories/{inputs.get('repositoryId')}"
            out.update(name=rid, registryUri=f"{location}-docker.pkg.dev/{project}/{inputs.get('repositoryId')}")
        elif t == "gcp:serviceaccount/account:Account":
            email = f"{inputs.get('accountId')}@{project}.iam.gserviceaccount.com"
            out.update(email=email, member=f"serviceAccount:{email}", uniqueId="100000000000000000001")
            rid = f"projects/{project}/serviceAccounts/{email}"
        elif t == "gcp:compute/address:Address":
            out["address"] = "203.0.113.20" if inputs.get("addressType", "EXTERNAL") == "EXTERNAL" else "10.0.15.20"
        elif t == "docker-build:index:Image":
            digest = "sha256:" + hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()
            tags = inputs.get("tags") or [name]
            out.update(digest=digest, ref=f"{str(tags[0]).rsplit(':', 1)[0]}@{digest}")
        elif t == "gcp:monitoring/dashboard:Dashboard":
            rid = f"projects/{MOCK_PROJECT_NUMBER}/dashboards/{args.name}"
        return rid, out

    def call(self, args: pulumi.runtime.MockCallArgs):
        if args.token == "gcp:organizations/getProject:getProject":
            project = args.args.get("projectId") or self.project
            return {"number": MOCK_PROJECT_NUMBER, "projectId": project, "name": project, "id": f"projects/{project}"}
        if args.token == "gcp:organizations/getClientConfig:getClientConfig":
            return {"project": self.project, "accessToken": "mock-access-token", "region": "us-central1"}
        if args.token == "gcp:compute/getNetwork:getNetwork":
            n = args.args.get("name")
            return {"name": n, "selfLink": f"https://www.googleapis.com/compute/v1/projects/{self.project}/global/networks/{n}", "id": f"projects/{self.project}/global/networks/{n}"}
        if args.token == "gcp:compute/getSubnetwork:getSubnetwork":
            n = args.args.get("name")
            region = args.args.get("region", "us-central1")
            # An adopted subnet carries the default secondary range names (pods, services).
            ranges = [{"rangeName": "pods", "ipCidrRange": "10.4.0.0/14"}, {"rangeName": "services", "ipCidrRange": "10.8.0.0/20"}]
            return {"name": n, "region": region, "secondaryIpRanges": ranges, "selfLink": f"https://www.googleapis.com/compute/v1/projects/{self.project}/regions/{region}/subnetworks/{n}", "id": f"projects/{self.project}/regions/{region}/subnetworks/{n}"}
        return {}


class _RecordingMonitor(pulumi_mocks.MockMonitor):
    def __init__(self, mocks: PlatformMocks):
        super().__init__(mocks)
        self.recorded: list[Resource] = []
        self.stack_outputs: dict[str, Any] = {}
        self.stack_urn = ""

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        """The URN the real engine gives: the parent's whole type chain (`A$B$C`), and no
        `pulumi:pulumi:Stack$` for children of the stack. Pulumi's MockMonitor keeps only the
        parent's last type and prefixes the stack's, so its URNs below depth two (and at the top)
        matched no real state; tests/real_engine compares URNs with a real `preview`."""
        qualified = parent.split("::")[2] if parent else ""
        if qualified and qualified != "pulumi:pulumi:Stack":
            type_ = f"{qualified}${type_}"
        return "urn:pulumi:" + "::".join([pulumi.get_stack(), pulumi.get_project(), type_, name])

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        if request.type == "pulumi:pulumi:Stack":
            self.stack_urn = response.urn
            return response
        wire = json_format.MessageToDict(request.object)
        self.recorded.append(
            Resource(
                urn=response.urn,
                type=request.type,
                name=request.name,
                parent=request.parent if request.parent != self.stack_urn else "",
                custom=bool(request.custom),
                inputs=_plain(wire),
                dependencies=sorted(request.dependencies),
            )
        )
        return response

    def RegisterResourceOutputs(self, request):
        if request.urn == self.stack_urn:
            self.stack_outputs = _plain(json_format.MessageToDict(request.outputs))
        return super().RegisterResourceOutputs(request)


class _ErrorLog(logging.Handler):
    def __init__(self):
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


class ProgramError(RuntimeError):
    """The program raised, or logged an error, while it ran under the mock engine."""


def config_map(raw: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    """Pulumi.<stack>.yaml `config:` values -> (Pulumi config strings, secret keys).

    `secure:` values cannot be decrypted offline: they become a masked placeholder, still marked
    secret so the program treats them as secrets.
    """
    values: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, value in raw.items():
        if isinstance(value, dict) and set(value) == {"secure"}:
            values[key] = SECRET
            secret_keys.append(key)
        elif isinstance(value, str):
            values[key] = value
        else:
            # `pulumi config set --secret --path` leaves: the object keeps its shape, each leaf is
            # masked, and the whole value is a secret (as the engine marks it).
            masked, has_secret = _mask_secure_leaves(value)
            values[key] = json.dumps(masked)
            if has_secret:
                secret_keys.append(key)
    return values, secret_keys


def _mask_secure_leaves(value: Any) -> tuple[Any, bool]:
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            return SECRET, True
        pairs = {k: _mask_secure_leaves(v) for k, v in value.items()}
        return {k: v for k, (v, _) in pairs.items()}, any(s for _, s in pairs.values())
    if isinstance(value, list):
        items = [_mask_secure_leaves(v) for v in value]
        return [v for v, _ in items], any(s for _, s in items)
    return value, False


def run_program(stack: str, config: dict[str, Any], program: Path = PROGRAM) -> Synthesis:
    """Run the Pulumi program under the mock engine with `config` (a stack file's `config:` map)."""
    values, secret_keys = config_map(config)
    gcp_project = config.get(f"{PROJECT}:project") or config.get("gcp:project") or "mock-project"
    mocks = PlatformMocks(project=str(gcp_project))
    monitor = _RecordingMonitor(mocks)
    errors = _ErrorLog()
    logger = logging.getLogger("igw.engine")
    logger.addHandler(errors)
    logger.propagate = False
    try:
        asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:  # asyncio.run() elsewhere in this process left no current loop
        asyncio.set_event_loop(asyncio.new_event_loop())
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False, logger=logger, monitor=monitor)
    pulumi_settings.SETTINGS.rpc_manager.clear()
    pulumi_settings.SETTINGS.outputs.clear()
    pulumi_settings.ROOT.set(None)  # a previous render in this process left its Stack as root
    pulumi.runtime.set_all_config(values, secret_keys)

    def main() -> None:
        sys.path.insert(0, str(program.parent))
        try:
            runpy.run_path(str(program), run_name="__main__")
        finally:
            sys.path.remove(str(program.parent))

    from pulumi.runtime.stack import run_in_stack
    from pulumi.runtime.sync_await import _sync_await

    try:
        _sync_await(run_in_stack(main))
    finally:
        logger.removeHandler(errors)
    if errors.messages:
        raise ProgramError("\n".join(errors.messages))
    return Synthesis(stack=stack, resources=monitor.recorded, outputs=monitor.stack_outputs)
