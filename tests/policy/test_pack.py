"""The pack itself: metadata, config schemas, the entry point, and a gRPC round trip through the
real pulumi-policy analyzer server (what `pulumi preview --policy-pack policy` talks to)."""

from __future__ import annotations

import ast
import copy
import itertools
import re
import subprocess
import sys
from pathlib import Path

import grpc
import jsonschema
import pytest
import yaml
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from components.builders.grace import termination_grace_period_seconds
from igw.policy_checks import POLICY_DIR, policies_module
from tests.conftest import rendered

mod = policies_module()


def test_policies_have_kebab_case_names_descriptions_and_levels():
    names = [p.name for p in mod.POLICIES]
    assert len(names) == len(set(names))
    for p in mod.POLICIES:
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)+", p.name), p.name
        assert p.description.endswith(")") or p.description.endswith("."), p.name
        assert p.enforcement_level is not None and p.severity is not None, p.name


def test_config_schema_defaults_satisfy_their_schema():
    for p in mod.POLICIES:
        if p.config_schema is None:
            continue
        schema = {"type": "object", "properties": p.config_schema.properties}
        defaults = {k: v["default"] for k, v in p.config_schema.properties.items() if "default" in v}
        jsonschema.validate(defaults, schema)


def test_pulumi_policy_yaml_and_requirements():
    meta = yaml.safe_load((POLICY_DIR / "PulumiPolicy.yaml").read_text())
    assert meta["runtime"]["name"] == "python"
    assert meta["name"] == mod.PACK_NAME
    import pulumi_policy.version

    reqs = (POLICY_DIR / "requirements.txt").read_text()
    assert f"pulumi-policy=={pulumi_policy.version.VERSION}" in reqs


def test_main_only_builds_the_pack():
    """PolicyPack() blocks forever: only policy/__main__.py may construct it."""
    tree = ast.parse((POLICY_DIR / "__main__.py").read_text())
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "PolicyPack"]
    assert len(calls) == 1
    package = POLICY_DIR / "inference_gateway_policies"
    for path in package.glob("*.py"):
        assert "PolicyPack(" not in path.read_text(), path


def test_published_pack_fallback_matches_the_program_formula():
    from inference_gateway_policies.drain import DrainInputs, _fallback_drain_seconds

    grid = itertools.product([1, 512, 4096, 32768], [1.0, 10.0, 37.5], [0.0, 0.2, 0.35], [0, 5, 30, 90], [1.0, 1.5, 2.0])
    for args in grid:
        assert _fallback_drain_seconds(DrainInputs(*args)) == termination_grace_period_seconds(*args), args


def test_from_a_checkout_the_pack_uses_the_program_formula():
    from inference_gateway_policies import drain

    assert drain._builder() is not None


@pytest.fixture(scope="module")
def analyzer():
    """policy/__main__.py as pulumi runs it: prints its port, serves the Analyzer gRPC service."""
    proc = subprocess.Popen([sys.executable, str(POLICY_DIR / "__main__.py")], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        port = int(proc.stdout.readline().decode().strip())
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(channel).result(timeout=30)
        yield analyzer_pb2_grpc.AnalyzerStub(channel)
        channel.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _struct(value: dict) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    json_format.ParseDict(value, s)
    return s


def test_analyzer_lists_every_policy(analyzer):
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty())
    assert info.name == mod.PACK_NAME
    assert [p.name for p in info.policies] == [p.name for p in mod.POLICIES]
    levels = {p.name: p.enforcementLevel for p in info.policies}
    assert levels["model-servers-run-as-non-root"] == analyzer_pb2.ADVISORY
    assert levels["gke-deletion-protection"] == analyzer_pb2.MANDATORY


def test_analyzer_reads_the_stack_environment_from_its_config(analyzer):
    """No stack tag: production comes from the stack config the engine sends (ConfigureStack)."""
    cluster = rendered("prod").one("gcp:container/cluster:Cluster")
    props = copy.deepcopy(cluster.inputs)
    props["deletionProtection"] = False
    analyzer.ConfigureStack(analyzer_pb2.AnalyzerStackConfigureRequest(
        stack="prod", project="inference-gateway", config={"inference-gateway:environment": "production"},
    ))
    response = analyzer.Analyze(analyzer_pb2.AnalyzeRequest(
        type=cluster.type, properties=_struct(props), urn=cluster.urn, name=cluster.name,
    ))
    found = [(d.policyName, d.enforcementLevel) for d in response.diagnostics]
    assert found == [("gke-deletion-protection", analyzer_pb2.MANDATORY)]
    assert "Cluster 'igw-prod-gke': deletionProtection is false in a production stack" in response.diagnostics[0].message


def test_analyzer_runs_stack_policies(analyzer):
    s = rendered("prod")
    resources = [
        analyzer_pb2.AnalyzerResource(type=r.type, properties=_struct(r.inputs), urn=r.urn, name=r.name, parent=r.parent)
        for r in s.resources
        if r.type != "kubernetes:networking.gke.io/v1:GCPTrafficExtension"
    ]
    analyzer.ConfigureStack(analyzer_pb2.AnalyzerStackConfigureRequest(stack="prod", tags={"environment": "production"}))
    response = analyzer.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=resources))
    assert [d.policyName for d in response.diagnostics] == ["model-armor-on-external-gateways"]
    assert response.diagnostics[0].urn == s.one("kubernetes:gateway.networking.k8s.io/v1:Gateway", "igw-prod-external").urn


def test_readme_lists_every_policy_with_its_level():
    readme = (POLICY_DIR / "README.md").read_text()
    for p in mod.POLICIES:
        assert f"| `{p.name}` | {p.enforcement_level.value}" in readme, p.name


def test_analyzer_reads_drain_inputs_from_the_stack_config(analyzer):
    """A faster model (5 ms/token) needs 90 s; the engine sends model_servers[].drain with the config."""
    import json

    d = rendered("prod").one("kubernetes:apps/v1:Deployment", "vllm-llama3-8b-instruct")
    props = copy.deepcopy(d.inputs)
    props["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 90
    request = analyzer_pb2.AnalyzeRequest(type=d.type, properties=_struct(props), urn=d.urn, name=d.name)

    def drain_violations(drain: dict) -> list[str]:
        servers = [{"name": "vllm-llama3-8b-instruct", "drain": drain}]
        analyzer.ConfigureStack(analyzer_pb2.AnalyzerStackConfigureRequest(
            stack="prod", config={"inference-gateway:model_servers": json.dumps(servers)},
        ))
        return [x.message for x in analyzer.Analyze(request).diagnostics if x.policyName == "model-server-graceful-drain"]

    assert "draining takes 130 s" in drain_violations({})[0]
    assert drain_violations({"time_per_output_token_ms": 5}) == []
