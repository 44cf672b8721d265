"""ModelArmor under the mock engine: templates, floor setting, callout IAM, template names."""

from __future__ import annotations

from igw.engine import MOCK_PROJECT_NUMBER
from tests.conftest import render_with

TEMPLATE = "gcp:modelarmor/template:Template"
FLOOR = "gcp:modelarmor/floorsetting:Floorsetting"
IAM = "gcp:projects/iAMMember:IAMMember"
CALLOUT = f"serviceAccount:service-{MOCK_PROJECT_NUMBER}@gcp-sa-dep.iam.gserviceaccount.com"
RAI = [
    {"filterType": f, "confidenceLevel": "MEDIUM_AND_ABOVE"}
    for f in ("DANGEROUS", "HARASSMENT", "HATE_SPEECH", "SEXUALLY_EXPLICIT")
]


def test_prod_templates(prod):
    templates = {t.inputs["templateId"]: t for t in prod.of_type(TEMPLATE)}
    assert sorted(templates) == ["llm-prompt-guard", "llm-response-guard"]
    for t in templates.values():
        assert t.inputs["location"] == "us-central1", t.urn
        assert t.inputs["project"] == "igw-prod-project", t.urn
        assert "inference-gateway:gcp:ModelArmor" in t.parent, t.urn
        fc = t.inputs["filterConfig"]
        assert fc["raiSettings"] == {"raiFilters": RAI}, t.urn
        assert fc["maliciousUriFilterSettings"] == {"filterEnforcement": "ENABLED"}, t.urn
        assert fc["sdpSettings"] == {"basicConfig": {"filterEnforcement": "ENABLED"}}, t.urn
        assert t.inputs["templateMetadata"] == {
            "enforcementType": "INSPECT_AND_BLOCK",
            "logSanitizeOperations": True,
            "logTemplateOperations": True,
        }, t.urn
    prompt, response = templates["llm-prompt-guard"], templates["llm-response-guard"]
    assert prompt.inputs["filterConfig"]["piAndJailbreakFilterSettings"] == {"filterEnforcement": "ENABLED", "confidenceLevel": "MEDIUM_AND_ABOVE"}, prompt.urn
    assert response.inputs["filterConfig"]["piAndJailbreakFilterSettings"] == {"filterEnforcement": "DISABLED"}, response.urn
    assert prod.of_type(FLOOR) == []


def test_callout_service_account_gets_its_three_roles_by_project_number(prod):
    roles = {m.inputs["role"]: m for m in prod.of_type(IAM) if m.inputs["member"] == CALLOUT}
    assert sorted(roles) == ["roles/modelarmor.calloutUser", "roles/modelarmor.user", "roles/serviceusage.serviceUsageConsumer"]
    for m in roles.values():
        assert m.inputs["project"] == "igw-prod-project", m.urn


def test_stacks_without_model_armor_create_none(dev, local):
    for synth in (dev, local):
        assert synth.of_type(TEMPLATE) == [] and synth.of_type(FLOOR) == []
        assert not [m for m in synth.of_type(IAM) if "gcp-sa-dep" in m.inputs["member"]]


def test_floor_setting_and_advanced_sdp():
    inspect = "projects/igw-dev-project/locations/us-central1/inspectTemplates/pii"
    synth = render_with(
        "dev",
        model_armor={
            "templates": [
                {"id": "strict", "sdp": "advanced", "sdp_advanced": {"inspect_template": inspect}, "enforcement": "INSPECT_ONLY", "log_operations": False}
            ],
            "guards": [{"model": "default", "prompt_template": "strict", "response_template": "strict"}],
            "floor_setting": True,
        },
    )
    t = synth.one(TEMPLATE)
    assert t.inputs["filterConfig"]["sdpSettings"] == {"advancedConfig": {"inspectTemplate": inspect}}, t.urn
    assert t.inputs["templateMetadata"]["enforcementType"] == "INSPECT_ONLY", t.urn
    floor = synth.one(FLOOR)
    assert floor.inputs["parent"] == "projects/igw-dev-project", floor.urn
    assert floor.inputs["location"] == "global", floor.urn
    assert floor.inputs["filterConfig"] == t.inputs["filterConfig"], floor.urn
    assert floor.inputs["enableFloorSettingEnforcement"] is True, floor.urn
