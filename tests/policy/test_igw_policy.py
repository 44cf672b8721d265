"""`igw policy`: the pack's policies offline over synth output, with exit codes and config."""

from __future__ import annotations

import copy
import json

import pytest

from igw.cli import main
from igw.policy_checks import PolicyConfigError, check, check_stack, format_report, resources_of
from igw.stackfile import read_stack
from igw.synth import write_outputs
from tests.conftest import render_with, rendered
from tests.policy.test_gke_policies import PROTECTION_MESSAGE
from tests.policy.test_routing_policies import MODEL_ARMOR_MESSAGE


@pytest.mark.parametrize("stack", ["dev", "prod", "local"])
def test_committed_stacks_pass(stack):
    report = check_stack(stack, resources_of(rendered(stack)))
    assert report.mandatory == [], format_report(report)
    assert report.environment == ("production" if stack == "prod" else "development")


def test_igw_policy_prod_exits_0(tmp_path, capsys):
    assert main(["policy", "--stack", "prod", "--out", str(tmp_path / "prod")]) == 0
    out = capsys.readouterr().out
    assert "stack prod (environment production)" in out
    assert "  pass model-armor-on-external-gateways [mandatory]" in out
    assert out.rstrip().endswith("policy check passed")


def unsafe_prod():
    """prod with deletion protection off and the external gateway's Model Armor dropped."""
    raw = read_stack("prod")
    cluster = dict(raw["inference-gateway:cluster"], deletion_protection=False)
    gateways = copy.deepcopy(raw["inference-gateway:gateways"])
    next(g for g in gateways if g["name"] == "external")["model_armor"] = False
    return render_with("prod", cluster=cluster, gateways=gateways)


def test_unsafe_prod_variant_fails_with_the_expected_messages(tmp_path, capsys):
    out_dir = tmp_path / "prod-unsafe"
    write_outputs(unsafe_prod(), out_dir)
    assert main(["policy", "--from", str(out_dir), "--environment", "production"]) == 1
    out = capsys.readouterr().out
    assert "  FAIL gke-deletion-protection [mandatory] (1 violation)" in out
    assert f"         - {PROTECTION_MESSAGE}" in out
    assert "  FAIL model-armor-on-external-gateways [mandatory] (1 violation)" in out
    assert f"         - {MODEL_ARMOR_MESSAGE}" in out
    assert out.rstrip().endswith("policy check FAILED")
    # The same variant as a development stack: neither production-only policy applies.
    assert main(["policy", "--from", str(out_dir), "--environment", "development"]) == 0


def test_report_groups_violations_by_policy_with_levels():
    report = check_stack("prod", resources_of(unsafe_prod()))
    assert [(v.policy, v.level) for v in report.mandatory] == [
        ("gke-deletion-protection", "mandatory"),
        ("model-armor-on-external-gateways", "mandatory"),
    ]
    assert report.messages("gke-deletion-protection") == [PROTECTION_MESSAGE]
    assert report.messages("model-armor-on-external-gateways") == [MODEL_ARMOR_MESSAGE]


def test_config_file_sets_levels_and_properties(tmp_path, capsys):
    out_dir = tmp_path / "prod-unsafe"
    write_outputs(unsafe_prod(), out_dir)
    config = tmp_path / "policy-config.json"
    config.write_text(json.dumps({
        "gke-deletion-protection": "advisory",
        "model-armor-on-external-gateways": {"enforcementLevel": "disabled"},
        "gke-min-version": {"minVersion": "1.34.0"},
    }))
    assert main(["policy", "--from", str(out_dir), "--environment", "production", "--config", str(config)]) == 1
    out = capsys.readouterr().out
    assert "  warn gke-deletion-protection [advisory] (1 violation)" in out
    assert "  skip model-armor-on-external-gateways [disabled]" in out
    assert "  FAIL gke-min-version [mandatory] (1 violation)" in out  # prod pins 1.33.2
    config.write_text(json.dumps({"all": "advisory"}))
    assert main(["policy", "--from", str(out_dir), "--environment", "production", "--config", str(config)]) == 0


def test_bad_config_is_an_error_naming_the_problem(tmp_path, capsys):
    config = tmp_path / "policy-config.yaml"
    config.write_text("gke-min-verison: advisory\n")
    assert main(["policy", "--stack", "dev", "--config", str(config)]) == 2
    assert "'gke-min-verison' is not a policy of this pack" in capsys.readouterr().err
    with pytest.raises(PolicyConfigError, match="enforcement level 'strict' is not one of advisory, mandatory, remediate, disabled"):
        check([], stack="x", environment="production", config={"all": "strict"})


def test_missing_synth_dir_is_an_error(tmp_path, capsys):
    assert main(["policy", "--from", str(tmp_path / "nope")]) == 2
    assert "resources.json does not exist; run `igw synth" in capsys.readouterr().err


def test_offline_checks_see_engine_shaped_props():
    """Props reach policies as pulumi-policy's read-only Mapping/Sequence proxies, as under the engine."""
    seen = []
    from igw.policy_checks import policies_module

    policy = next(p for p in policies_module().POLICIES if p.name == "gke-vpc-native")
    original = policy.validate

    def spy(args, report):
        if args.resource_type == "gcp:container/cluster:Cluster":
            seen.append((type(args.props).__name__, type(args.props["nodeLocations"]).__name__, args.stack_tags["environment"]))
        return original(args, report)

    policy.validate = spy
    try:
        check_stack("prod", resources_of(rendered("prod")))
    finally:
        del policy.validate
    assert seen == [("_DictProxy", "_ListProxy", "production")]


def test_from_dir_with_stack_takes_the_stack_files_environment(tmp_path, capsys):
    out_dir = tmp_path / "prod-unsafe"
    write_outputs(unsafe_prod(), out_dir)
    assert main(["policy", "--stack", "prod", "--from", str(out_dir)]) == 1
    assert "stack prod (environment production)" in capsys.readouterr().out
