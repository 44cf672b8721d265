"""Reading stacks/Pulumi.<stack>.yaml: duplicate keys are errors naming the path (exact messages)."""

from __future__ import annotations

import pytest

from components.config import ConfigError
from igw.stackfile import read_stack, validate_stack


def write(tmp_path, text: str):
    (tmp_path / "Pulumi.s.yaml").write_text(text)
    return tmp_path


def test_duplicate_keys_at_any_depth_are_errors_naming_the_path(tmp_path):
    d = write(tmp_path, """\
config:
  inference-gateway:project: igw-local-dev
  inference-gateway:models:
    - name: food-review
      pool: p
      criticality: Standard
      criticality: Critical
  inference-gateway:project: other-project
""")
    with pytest.raises(ConfigError) as err:
        read_stack("s", d)
    assert err.value.problems == [
        "Pulumi.s.yaml: config.inference-gateway:models[0].criticality: duplicate key 'criticality' at line 7 "
        "(first at line 6); list each key once, a YAML loader would keep only the last value",
        "Pulumi.s.yaml: config.inference-gateway:project: duplicate key 'inference-gateway:project' at line 8 "
        "(first at line 2); list each key once, a YAML loader would keep only the last value",
    ]


def test_duplicate_top_level_section(tmp_path):
    d = write(tmp_path, "config:\n  a:b: 1\nconfig:\n  a:b: 2\n")
    with pytest.raises(ConfigError) as err:
        validate_stack("s", d)
    assert err.value.problems == [
        "Pulumi.s.yaml: config: duplicate key 'config' at line 3 (first at line 1); list each key once, "
        "a YAML loader would keep only the last value"
    ]


def test_same_key_in_sibling_mappings_is_fine(tmp_path):
    d = write(tmp_path, "config:\n  x:list:\n    - {name: a}\n    - {name: b}\n")
    assert read_stack("s", d) == {"x:list": [{"name": "a"}, {"name": "b"}]}


@pytest.mark.parametrize("stack", ["dev", "prod", "local"])
def test_committed_stacks_have_no_duplicates(stack):
    assert read_stack(stack)
