"""Real vLLM (its CPU build) as the model-server pods of `igw up`, for stacks that ask for it.

A stack file selects what stands in for its model-server pods with a key of its own namespace,
read by `igw up` only (the Pulumi program ignores other namespaces)::

    igw-local:replicas: vllm-cpu     # or vllm-sim (the default)

With ``vllm-cpu`` each pod is ``python -m vllm.entrypoints.openai.api_server`` from the env that
``.ci/setup-vllm`` prepares, serving the tiny model vllm_cpu/ makes **in place of** the stack's
model: the pod keeps the stack's served model name, and its adapters (from the rendered LoRA
ConfigMap) are served by the tiny adapters, assigned in turn. Of the rendered container's vLLM
args the ones that mean the same on CPU carry over (``KEPT``); the rest (GPU sizing, tensor
parallelism, context length of the real model) cannot, and the summary lists them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from endpoint_picker.scrape import parse_metrics

from ..stackfile import STACKS_DIR, read_stack, stack_file
from .plan import build_plan
from .plan_replicas import Replica
from .process import Proc
from .rendered_objects import load_manifests
from .replicas import _HttpProbes, _meta

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "igw-local"
SETUP_COMMAND = ".ci/setup-vllm"
STARTUP_TIMEOUT_S = 900.0
"""vLLM's start-up is mostly imports in four processes: 4-7 min on a loaded 2-core machine."""
MAX_REPLICAS = 2
"""~4.2 GB RSS each (1 GiB of KV cache): two fit next to everything else on a 16-24 GB machine."""
MAX_MODEL_LEN = 1024
MAX_NUM_SEQS = 16
LORA_RANK = 8

KEPT = {"--max-loras", "--max-cpu-loras", "--max-num-seqs", "--enable-lora", "--enable-prefix-caching",
        "--no-enable-prefix-caching", "--seed", "--max-num-batched-tokens"}
"""Rendered vLLM flags passed on unchanged (``--max-num-seqs`` capped at MAX_NUM_SEQS)."""
REPLACED = {"--model", "--served-model-name", "--host", "--port", "--max-model-len", "--max-lora-rank",
            "--chat-template", "--lora-modules"}
"""Flags this launcher sets itself."""


class LocalSettings(BaseModel):
    """The stack file's ``igw-local:*`` keys (validated once, here)."""

    model_config = ConfigDict(extra="forbid")
    replicas: Literal["vllm-sim", "vllm-cpu"] = "vllm-sim"


class SettingsError(ValueError):
    pass


def local_settings(stack_config: dict[str, Any]) -> LocalSettings:
    """``igw-local:*`` keys of a stack file's `config:` map; errors name the key, value and choices."""
    ours = {k.partition(":")[2]: v for k, v in stack_config.items() if k.partition(":")[0] == NAMESPACE}
    try:
        return LocalSettings(**ours)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            key = f"{NAMESPACE}:{'.'.join(str(p) for p in err['loc'])}"
            if err["type"] == "extra_forbidden":
                problems.append(f"{key}: unknown key; allowed: {', '.join(f'{NAMESPACE}:{k}' for k in LocalSettings.model_fields)}")
            else:
                allowed = err.get("ctx", {}).get("expected", "")
                problems.append(f"{key}: {err['input']!r} is not allowed; use {allowed}")
        raise SettingsError("; ".join(problems)) from None


def locate_vllm() -> dict[str, Any]:
    """vllm_cpu/locate.py's answer: where the env and the tiny model are, and whether they are ready."""
    out = subprocess.run([sys.executable, str(ROOT / "vllm_cpu" / "locate.py"), "--json"],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def preflight(info: dict[str, Any], replicas: int) -> list[str]:
    """Problems that would make a vllm-cpu stack fail to start, before anything starts."""
    problems = []
    missing = [w for w, ok in (("the vLLM environment", info["env_ready"]), ("the tiny model", info["model_ready"])) if not ok]
    if missing:
        problems.append(f"{' and '.join(missing)} not prepared ({info['env_dir']}, {info['model_root']}): run {SETUP_COMMAND}")
    if replicas > MAX_REPLICAS:
        problems.append(f"the stack asks for {replicas} model-server pods; igw-local:replicas vllm-cpu runs at most "
                        f"{MAX_REPLICAS} real vLLM processes here (~4.2 GB each): lower model_servers[].replicas")
    return problems


def prepare(stack: str, stacks_dir: Path | None, manifests: Path) -> LocalSettings:
    """The stack's ``igw-local:*`` settings, checked against this machine before anything starts
    (raises SettingsError naming what to do). No stack file (a bare --from-manifests): defaults."""
    folder = stacks_dir or STACKS_DIR
    settings = local_settings(read_stack(stack, folder)) if stack_file(stack, folder).exists() else LocalSettings()
    if settings.replicas == "vllm-cpu":
        pods = [r for r in build_plan(load_manifests(manifests)).replicas if r.runtime == "vllm"]
        problems = preflight(locate_vllm(), len(pods))
        if problems:
            raise SettingsError("; ".join(problems))
    return settings


def startup_timeout_for(replicas: str) -> float:
    """Extra seconds `igw up` waits for this kind of replica (0: its --timeout covers it)."""
    return STARTUP_TIMEOUT_S if replicas == "vllm-cpu" else 0.0


@dataclass
class Substitution:
    """What a real-vLLM pod serves instead of what the stack names."""

    served_names: list[str]
    adapters: list[tuple[str, str]]           # (the stack's adapter id, the tiny adapter serving it)
    dropped: list[str] = field(default_factory=list)

    def describe(self, tiny_model: str) -> list[str]:
        lines = [f"model {', '.join(self.served_names)} -> tiny Llama ({tiny_model})"]
        lines += [f"adapter {a} -> {tiny}" for a, tiny in self.adapters]
        if self.dropped:
            lines.append("not applied on CPU: " + " ".join(self.dropped))
        return lines


def _flags(args: list[str]) -> list[tuple[str, list[str]]]:
    """`--flag [values...]` groups of an argv (`--k=v` kept as one flag with one value)."""
    out: list[tuple[str, list[str]]] = []
    for a in args:
        if a.startswith("--"):
            key, eq, val = a.partition("=")
            out.append((key, [val] if eq else []))
        elif out:
            out[-1][1].append(a)
    return out


def substitute(r: Replica, info: dict[str, Any]) -> tuple[list[str], Substitution]:
    """The replica's rendered vLLM args -> CPU vLLM args serving the tiny model under the stack's names."""
    flags = _flags(r.args)
    given = dict(flags)
    served = given.get("--served-model-name") or given.get("--model") or [r.model]
    tiny = list(info["adapters"])
    assigned = [(a, tiny[i % len(tiny)]) for i, (a, _) in enumerate(r.adapters)]
    args = ["--model", info["model_dir"], "--served-model-name", *served, "--host", r.address, "--port", str(r.ports[0]),
            "--max-model-len", str(MAX_MODEL_LEN), "--chat-template", info["chat_template"]]
    dropped: list[str] = []
    for key, values in flags:
        if key in REPLACED:
            if key in ("--max-model-len", "--max-lora-rank", "--chat-template"):
                dropped += [key, *values]
            continue
        if key not in KEPT:
            dropped += [key, *values]
            continue
        if key == "--max-num-seqs" and values and int(values[0]) > MAX_NUM_SEQS:
            dropped += [key, *values]
            values = [str(MAX_NUM_SEQS)]
        args += [key, *values]
    if assigned:
        if "--enable-lora" not in given:
            args.append("--enable-lora")
        args += ["--max-lora-rank", str(LORA_RANK), "--lora-modules", *[f"{a}={info['adapters'][t]}" for a, t in assigned]]
    return args, Substitution(served, assigned, dropped)


class VllmCpuLauncher(_HttpProbes):
    """One real vLLM server per pod, on the pod's address and first target port; readiness is the
    pod's readinessProbe path (vLLM's /health), idleness vLLM's own running/waiting gauges."""

    kind = "vllm-cpu"
    startup_timeout_s = STARTUP_TIMEOUT_S

    def __init__(self, http: httpx.Client, info: dict[str, Any] | None = None) -> None:
        super().__init__(http)
        self.info = info or locate_vllm()
        self.started = 0

    def proc(self, r: Replica, logs: Path) -> Proc:
        args, sub = substitute(r, self.info)
        argv = [self.info["python"], "-m", self.info["server_module"], *args]
        binding = self.info["core_binding"]     # each server's engine on a core of its own, in turn
        env = {**self.info["process_env"], **binding[self.started % len(binding)]}
        self.started += 1
        p = Proc(r.name, "vllm", argv, logs / f"{r.name}.log", env=env)
        p.meta = {**_meta(r), "substitution": sub.describe(Path(self.info["model_root"]).name)}
        return p

    def idle(self, p: Proc) -> bool:
        try:
            text = self.http.get(f"http://{p.meta['address']}:{p.meta['ports'][0]}/metrics").content
        except httpx.HTTPError:
            return True
        m = parse_metrics(text)
        return not m.running and not m.waiting

    def set_time_scale(self, p: Proc, time_scale: float) -> None:
        pass  # real time
