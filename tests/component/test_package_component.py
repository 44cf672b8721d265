"""The package as a component provider (provider/, components/package.py), in-process: the schema
other languages' SDKs are generated from, and the component rendering exactly what the Pulumi
program renders for the same config. tests/real_engine runs it through the real engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from components.config import PROJECT, SECRET_KEYS, ConfigError
from components.package import PACKAGE, PLATFORM_TYPE, Platform
from igw.engine import run_program
from igw.stackfile import read_stack
from tests.conftest import rendered

ROOT = Path(__file__).resolve().parents[2]


def schema() -> dict:
    from pulumi.provider.experimental.component import ComponentProvider

    return json.loads(ComponentProvider([Platform], PACKAGE, None, "0.1.0").schema)


def test_plugin_files_name_the_package_and_its_runtime():
    plugin = yaml.safe_load((ROOT / "provider" / "PulumiPlugin.yaml").read_text())
    assert plugin == {"runtime": {"name": "python", "options": {"toolchain": "uv"}}}
    main = (ROOT / "provider" / "__main__.py").read_text()
    assert "component_provider_host([Platform], name=PACKAGE, version=VERSION)" in main


def test_schema_declares_the_platform_component():
    s = schema()
    assert s["name"] == "inference-gateway" and s["version"] == "0.1.0"
    assert list(s["resources"]) == [PLATFORM_TYPE]
    platform = s["resources"][PLATFORM_TYPE]
    assert platform["isComponent"] is True
    inputs = platform["inputProperties"]
    # The secret argument names are the stack's secret config keys, every one of them.
    assert sorted(inputs) == sorted(["config", *SECRET_KEYS])
    assert inputs["config"]["type"] == "object" and inputs["config"]["plain"] is True
    assert inputs["config"]["additionalProperties"]["$ref"] == "pulumi.json#/Any"
    assert all(inputs[k]["type"] == "string" and "plain" not in inputs[k] for k in ("hfToken", "apiKeys", "kubeconfig"))
    keys = inputs["providerKeys"]
    assert keys["type"] == "object" and keys["additionalProperties"]["additionalProperties"]["type"] == "string"
    assert platform["requiredInputs"] == ["config"]
    assert platform["properties"]["outputs"]["additionalProperties"]["$ref"] == "pulumi.json#/Any"
    assert platform["required"] == ["outputs"]
    assert "stack file" in inputs["config"]["description"]


def byo_values() -> dict:
    """The byo stack's own keys as a component's `config` argument (secrets excluded)."""
    return {k.split(":", 1)[1]: v for k, v in read_stack("byo").items() if k.startswith(f"{PROJECT}:") and k.split(":", 1)[1] not in SECRET_KEYS}


def component_program(tmp_path: Path, config: dict) -> Path:
    program = tmp_path / "__main__.py"
    program.write_text(
        "import json\nimport pulumi\nfrom components.package import Platform\n"
        f"platform = Platform('ml', {{'config': json.loads({json.dumps(json.dumps(config))}), "
        "'hf_token': 'hf-plaintext', 'kubeconfig': 'kubeconfig-plaintext'})\n"
        "pulumi.export('outputs', platform.outputs)\n"
    )
    return program


def test_component_renders_what_the_program_renders(tmp_path):
    synthesis = run_program("byo", {}, program=component_program(tmp_path, byo_values()))
    component = synthesis.one(PLATFORM_TYPE)
    assert component.name == "ml" and component.parent == ""

    def inventory(s):
        return sorted((r.type, r.name, json.dumps(r.inputs, sort_keys=True)) for r in s.resources if r.type != PLATFORM_TYPE)

    assert inventory(synthesis) == inventory(rendered("byo"))
    text = json.dumps([r.inputs for r in synthesis.resources])
    assert "hf-plaintext" not in text and "kubeconfig-plaintext" not in text
    assert synthesis.outputs["outputs"] == rendered("byo").outputs


def test_component_rejects_bad_config_with_the_stack_wording(tmp_path):
    values = {**byo_values(), "gateways": [{"name": "gw", "class": "gke-l7-global-external-managed"}]}
    with pytest.raises(ConfigError, match=r"^gateways\[0\]\.class: 'gke-l7-global-external-managed' is not supported"):
        run_program("byo", {}, program=component_program(tmp_path, values))


def test_component_needs_a_prebuilt_picker_image(tmp_path):
    values = {k: v for k, v in byo_values().items() if k != "picker_image"}
    with pytest.raises(ValueError, match=r"^config\.picker_image\.image: is required when the platform is used as a component"):
        run_program("byo", {}, program=component_program(tmp_path, values))
