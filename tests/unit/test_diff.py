"""`igw diff`: markdown diffs of two synth outputs, checked against committed golden files.

tests/unit/golden/diff/{base,head}/ are small synth outputs trimmed from the dev render, with
head changed the ways PRs change stacks (version bump, replicas, an added env var, a rewritten
ConfigMap, a deleted and an added resource, new outputs). Regenerate expected.md after an
intended format change with `IGW_UPDATE_GOLDEN=1 uv run pytest tests/unit/test_diff.py` and
review the diff of the golden file.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

from igw.cli import main
from igw.diff import ABSENT, diff, diff_dirs, field_changes, show_pair, to_markdown
from igw.synth import write_outputs
from tests.conftest import render_with, rendered

GOLDEN = Path(__file__).parent / "golden" / "diff"
TITLE = "igw diff: dev (golden)"


def test_golden_markdown():
    text = to_markdown(diff_dirs(GOLDEN / "base", GOLDEN / "head"), title=TITLE)
    expected = GOLDEN / "expected.md"
    if os.environ.get("IGW_UPDATE_GOLDEN"):
        expected.write_text(text)
    assert text == expected.read_text()


def test_cli_writes_the_same_markdown(tmp_path, capsys):
    out = tmp_path / "comment.md"
    assert main(["diff", str(GOLDEN / "base"), str(GOLDEN / "head"), "--title", TITLE, "--out", str(out)]) == 0
    assert out.read_text() == (GOLDEN / "expected.md").read_text()
    assert "(1 to add, 5 to change, 1 to delete)" in capsys.readouterr().out


def test_missing_dir_is_an_error(tmp_path, capsys):
    assert main(["diff", str(tmp_path / "nope"), str(GOLDEN / "head")]) == 2
    assert "resources.json does not exist" in capsys.readouterr().err


def test_identical_outputs():
    text = to_markdown(diff_dirs(GOLDEN / "base", GOLDEN / "base"), title="t")
    assert text == "### t\n\nNo changes: 6 resources are identical.\n"


def test_named_lists_match_by_name_and_whole_subtrees_are_one_entry():
    old = {"env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}
    new = {"env": [{"name": "Z", "value": "0"}, {"name": "A", "value": "1"}, {"name": "B", "value": "3"}], "extra": {"x": 1}}
    assert field_changes(old, new) == [
        ("env[name=B].value", "2", "3"),
        ("env[name=Z]", ABSENT, {"name": "Z", "value": "0"}),
        ("extra", ABSENT, {"x": 1}),
    ]
    assert field_changes({"a": [1, 2]}, {"a": [1]}) == [("a[1]", 2, ABSENT)]
    assert field_changes({"n": 1}, {"n": 1.0}) == [("n", 1, 1.0)]


def test_long_values_are_truncated_around_the_change():
    old, new = "x" * 200 + "old-tail", "x" * 200 + "new-tail"
    before, after = show_pair(old, new)
    assert before.startswith("`…") and "old-tail" in before and len(before) <= 62
    assert after.startswith("`…") and "new-tail" in after


def test_table_cells_escape_pipes():
    before, after = show_pair("a|b", "c`d")
    assert before == '`"a\\|b"`' and after == "`\"c'd\"`"


def test_real_renders_diff_replicas_and_keep_secrets_masked(tmp_path):
    servers = copy.deepcopy(render_config("dev"))
    servers[0]["replicas"] = 5
    head = render_with("dev", model_servers=servers)
    write_outputs(rendered("dev"), tmp_path / "base")
    write_outputs(head, tmp_path / "head")
    d = diff_dirs(tmp_path / "base", tmp_path / "head")
    # render_with renames the stack ("dev-variant"): URNs differ, so compare by type and name.
    assert d.changed == [] and len(d.added) == len(d.removed)
    text = to_markdown(same_urns(d, "dev"), title="t")
    assert "| `spec.replicas` | `3` | `5` |" in text
    base_secret = next(r for r in d.removed if r["type"] == "kubernetes:core/v1:Secret" and r["name"] == "igw-dev-hf-token")
    assert base_secret["inputs"]["stringData"] == {"token": "[secret]"}
    assert "c2VlZC1kZXYtaGYtdG9rZW4" not in (tmp_path / "head" / "resources.json").read_text()


def render_config(stack: str):
    from igw.stackfile import read_stack

    return read_stack(stack)["inference-gateway:model_servers"]


def same_urns(d, stack: str):
    """Re-diff with the variant's URNs mapped back onto the base stack's."""
    old = {r["urn"]: r for r in d.removed}
    new = {r["urn"].replace(f"urn:pulumi:{stack}-variant::", f"urn:pulumi:{stack}::"): r for r in d.added}
    return diff(old, new)
