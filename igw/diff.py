"""`igw diff BASE HEAD`: a markdown diff of two `igw synth` outputs, for a PR comment.

Resources are matched by URN and grouped by type. A changed resource lists its changed inputs as
dotted paths (`spec.template.spec.containers[name=vllm].args[3]`) with `old → new`. Lists whose
items all carry a `name` are keyed by it, so inserting a container or env var shows as one added
entry instead of every later index changing. Secrets stay masked: synth never records them
(`[secret]`), and nothing here unmasks anything. Long values are truncated.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

ABSENT = object()
VALUE_WIDTH = 60
MAX_FIELDS = 40
MAX_CHARS = 60_000
"""GitHub caps a comment at 65,536 characters."""

_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


@dataclass
class ResourceChange:
    urn: str
    type: str
    name: str
    fields: list[tuple[str, Any, Any]] = field(default_factory=list)
    """(dotted path, old, new); ABSENT where the path does not exist."""


@dataclass
class SynthDiff:
    added: list[dict[str, Any]]
    removed: list[dict[str, Any]]
    changed: list[ResourceChange]
    unchanged: int
    outputs: list[tuple[str, Any, Any]]

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.outputs)


def _key(k: str) -> str:
    return f".{k}" if _PLAIN_KEY.match(k) else f"[{json.dumps(k)}]"


def _named_list(value: list[Any]) -> bool:
    names = [v.get("name") for v in value if isinstance(v, dict)]
    return bool(value) and len(names) == len(value) and all(isinstance(n, str) for n in names) and len(set(names)) == len(names)


def flatten(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Leaf paths of a JSON value; empty containers are leaves."""
    if isinstance(value, dict) and value:
        for k in sorted(value):
            yield from flatten(value[k], path + _key(k))
    elif isinstance(value, list) and value:
        if _named_list(value):
            for item in value:
                yield from flatten(item, f"{path}[name={item['name']}]")
        else:
            for i, item in enumerate(value):
                yield from flatten(item, f"{path}[{i}]")
    else:
        yield path, value


def field_changes(old: Any, new: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """(path, old, new) for every changed subtree. A key or named item present on one side only is
    one entry holding the whole value; lists keyed by `name` match items by name."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new)):
            out += field_changes(old.get(k, ABSENT), new.get(k, ABSENT), path + _key(k))
        return out
    if isinstance(old, list) and isinstance(new, list):
        if _named_list(old) and _named_list(new):
            a = {v["name"]: v for v in old}
            b = {v["name"]: v for v in new}
            order = [v["name"] for v in old] + [v["name"] for v in new if v["name"] not in a]
            out = []
            for n in order:
                out += field_changes(a.get(n, ABSENT), b.get(n, ABSENT), f"{path}[name={n}]")
            return out
        out = []
        for i in range(max(len(old), len(new))):
            out += field_changes(old[i] if i < len(old) else ABSENT, new[i] if i < len(new) else ABSENT, f"{path}[{i}]")
        return out
    if old is ABSENT and new is ABSENT:
        return []
    if old == new and type(old) is type(new):
        return []
    return [(path.lstrip("."), old, new)]


def load(directory: Path) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    resources_file = directory / "resources.json"
    if not resources_file.exists():
        raise FileNotFoundError(f"{resources_file} does not exist; run `igw synth --stack NAME --out {directory}`")
    resources = {r["urn"]: r for r in json.loads(resources_file.read_text())}
    outputs_file = directory / "outputs.json"
    outputs = json.loads(outputs_file.read_text()) if outputs_file.exists() else {}
    return resources, outputs


def diff_dirs(base: Path, head: Path) -> SynthDiff:
    (old, old_out), (new, new_out) = load(base), load(head)
    return diff(old, new, old_out, new_out)


def diff(
    old: dict[str, dict[str, Any]],
    new: dict[str, dict[str, Any]],
    old_outputs: dict[str, Any] | None = None,
    new_outputs: dict[str, Any] | None = None,
) -> SynthDiff:
    added = [new[u] for u in sorted(set(new) - set(old))]
    removed = [old[u] for u in sorted(set(old) - set(new))]
    changed, unchanged = [], 0
    for urn in sorted(set(old) & set(new)):
        a, b = old[urn], new[urn]
        fields = field_changes(a.get("inputs", {}), b.get("inputs", {}))
        if a.get("parent") != b.get("parent"):
            fields.insert(0, ("(parent)", a.get("parent"), b.get("parent")))
        if fields:
            changed.append(ResourceChange(urn, b["type"], b["name"], fields))
        else:
            unchanged += 1
    outputs = []
    o_old, o_new = old_outputs or {}, new_outputs or {}
    for key in sorted(set(o_old) | set(o_new)):
        if o_old.get(key, ABSENT) != o_new.get(key, ABSENT):
            outputs.append((key, o_old.get(key, ABSENT), o_new.get(key, ABSENT)))
    return SynthDiff(added, removed, changed, unchanged, outputs)


def _cell(text: str) -> str:
    return "`" + text.replace("|", "\\|").replace("`", "'").replace("\n", "\\n") + "`"


def _text(value: Any) -> str:
    return value if value == "[secret]" else json.dumps(value, sort_keys=True, ensure_ascii=False)


def show(value: Any, width: int = VALUE_WIDTH, start: int = 0) -> str:
    """A value for a markdown table cell: JSON, truncated (from `start`), in a code span."""
    if value is ABSENT:
        return "—"
    text = _text(value)
    if start > 0:
        text = "…" + text[start:]
    if len(text) > width:
        text = text[: width - 1] + "…"
    return _cell(text)


def show_pair(old: Any, new: Any, width: int = VALUE_WIDTH) -> tuple[str, str]:
    """Both sides of a change; two long strings are shown from just before their first difference."""
    start = 0
    if isinstance(old, str) and isinstance(new, str) and max(len(_text(old)), len(_text(new))) > width:
        a, b = _text(old), _text(new)
        first = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        start = max(0, first - width // 4)
    return show(old, width, start), show(new, width, start)


def _display_names(resources: list[dict[str, Any]]) -> dict[str, str]:
    """Resource name, plus the parent's name when two resources of a type share it."""
    counts: dict[tuple[str, str], int] = {}
    for r in resources:
        counts[(r["type"], r["name"])] = counts.get((r["type"], r["name"]), 0) + 1
    out = {}
    for r in resources:
        name = r["name"]
        if counts[(r["type"], name)] > 1 and r.get("parent"):
            name = f"{name} (in {r['parent'].rsplit('::', 1)[-1]})"
        out[r["urn"]] = name
    return out


def to_markdown(d: SynthDiff, title: str = "igw diff", max_fields: int = MAX_FIELDS, max_chars: int = MAX_CHARS) -> str:
    lines = [f"### {title}", ""]
    if d.empty:
        lines.append(f"No changes: {d.unchanged} resources are identical.")
        return "\n".join(lines) + "\n"
    lines.append(
        f"**{len(d.added)} to add, {len(d.changed)} to change, {len(d.removed)} to delete**, {d.unchanged} unchanged."
    )
    types = sorted({r["type"] for r in d.added + d.removed} | {c.type for c in d.changed})
    if types:
        lines += ["", "| type | add | change | delete |", "|---|---:|---:|---:|"]
        for t in types:
            n_add = sum(r["type"] == t for r in d.added)
            n_chg = sum(c.type == t for c in d.changed)
            n_del = sum(r["type"] == t for r in d.removed)
            lines.append(f"| `{t}` | {n_add or ''} | {n_chg or ''} | {n_del or ''} |")
    names = _display_names(d.added + d.removed + [{"urn": c.urn, "type": c.type, "name": c.name} for c in d.changed])
    for t in types:
        lines += ["", f"#### `{t}`", ""]
        for r in (r for r in d.added if r["type"] == t):
            lines.append(f"- **+ {names[r['urn']]}** (added, {sum(1 for _ in flatten(r.get('inputs', {})))} input fields)")
        for r in (r for r in d.removed if r["type"] == t):
            lines.append(f"- **− {names[r['urn']]}** (deleted)")
        for c in (c for c in d.changed if c.type == t):
            if lines[-1] != "":
                lines.append("")
            lines.append(f"- **~ {names[c.urn]}** ({len(c.fields)} field{'s' if len(c.fields) != 1 else ''} changed)")
            lines += ["", "  | field | base | head |", "  |---|---|---|"]
            for path, old, new in c.fields[:max_fields]:
                before, after = show_pair(old, new)
                lines.append(f"  | `{path}` | {before} | {after} |")
            if len(c.fields) > max_fields:
                lines.append(f"  | … {len(c.fields) - max_fields} more | | |")
    if d.outputs:
        lines += ["", "#### Stack outputs", "", "| output | base | head |", "|---|---|---|"]
        for key, old, new in d.outputs:
            before, after = show_pair(old, new)
            lines.append(f"| `{key}` | {before} | {after} |")
    text = "\n".join(lines).rstrip() + "\n"
    if len(text) > max_chars:
        cut = text.rfind("\n", 0, max_chars - 200)
        text = text[:cut] + f"\n\n… diff truncated ({len(text) - cut} more characters); run `igw diff` locally for all of it.\n"
    return text
