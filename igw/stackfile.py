"""Reading stacks/Pulumi.<stack>.yaml the way Pulumi does (stackConfigDir: stacks)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from components.config import ConfigError, StackConfig, config_values_from_stack_file
from components.stack_config import parse_stack_config

ROOT = Path(__file__).resolve().parent.parent
STACKS_DIR = ROOT / "stacks"


def stack_file(stack: str, stacks_dir: Path = STACKS_DIR) -> Path:
    return stacks_dir / f"Pulumi.{stack}.yaml"


def available_stacks(stacks_dir: Path = STACKS_DIR) -> list[str]:
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in stacks_dir.glob("Pulumi.*.yaml"))


def read_stack(stack: str, stacks_dir: Path = STACKS_DIR) -> dict[str, Any]:
    """The stack file's `config:` map (Pulumi keys -> values)."""
    path = stack_file(stack, stacks_dir)
    if not path.exists():
        known = ", ".join(available_stacks(stacks_dir)) or "none"
        raise ConfigError([f"stack {stack!r}: no file {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}; known stacks: {known}"])
    try:
        text = path.read_text()
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as err:
        raise ConfigError([f"{path.name}: not valid YAML ({err})"]) from None
    duplicates = duplicate_keys(node)
    if duplicates:
        raise ConfigError([f"{path.name}: {d}" for d in duplicates])
    document = yaml.safe_load(text) or {}
    if not isinstance(document, dict) or not isinstance(document.get("config", {}), dict):
        raise ConfigError([f"{path.name}: expected a mapping with a 'config:' section"])
    return dict(document.get("config") or {})


def duplicate_keys(node: yaml.Node | None, path: str = "") -> list[str]:
    """Every key a YAML mapping lists twice, by path (`config.inference-gateway:gateways[0].name`).
    YAML loaders keep the last value silently; a stack file must say each thing once."""
    out: list[str] = []
    if isinstance(node, yaml.MappingNode):
        first: dict[object, int] = {}
        for key, value in node.value:
            k = key.value if isinstance(key, yaml.ScalarNode) else repr(key)
            where = f"{path}.{k}" if path else str(k)
            if k in first:
                out.append(f"{where}: duplicate key {k!r} at line {key.start_mark.line + 1} (first at line "
                           f"{first[k]}); list each key once, a YAML loader would keep only the last value")
            else:
                first[k] = key.start_mark.line + 1
            out += duplicate_keys(value, where)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out += duplicate_keys(item, f"{path}[{i}]")
    return out


def validate_stack(stack: str, stacks_dir: Path = STACKS_DIR) -> StackConfig:
    raw = read_stack(stack, stacks_dir)
    ours, _ = config_values_from_stack_file({"config": raw})
    from components.config.stack import PROJECT, SECRET_KEYS, StackConfig as _S

    unknown = sorted(
        k.partition(":")[2]
        for k in raw
        if k.partition(":")[0] == PROJECT and k.partition(":")[2] not in set(_S.model_fields) | set(SECRET_KEYS)
    )
    if unknown:
        allowed = ", ".join([*_S.model_fields, *SECRET_KEYS])
        raise ConfigError([f"{k}: unknown config key; allowed: {allowed}" for k in unknown])
    return parse_stack_config(ours)
