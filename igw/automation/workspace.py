"""The real Pulumi engine driving the unchanged program through the Automation API.

    stack = EngineStack(workdir, "byo", stack_file_config, secrets={"inference-gateway:kubeconfig": text},
                        skip_await=True)
    stack.up(); preview = stack.preview(); stack.destroy()

The program is inline: `components.program.run`, the same function `__main__.py` calls, so the
Python SDK serves the language runtime in this process and only the CLI (plus the Kubernetes
provider plugin) is needed; the Python language host cannot be built here (real-parts.md). The
work dir holds its own Pulumi.yaml (project `inference-gateway`, a `file://` backend inside the
work dir, the Kubernetes plugin as a project plugin), the stack file with the given config
(structured values as YAML, like `stacks/Pulumi.<stack>.yaml`) and secrets encrypted with a
passphrase, and a private PULUMI_HOME. Nothing is downloaded: automatic plugin acquisition is off.

`skip_await` annotates the objects whose readiness needs running pods (Deployments, Services...)
with `pulumi.com/skipAwait: "true"` through a resource transform registered before the program
runs: on a control plane without nodes (igw.kube.LocalCluster) no pod ever becomes ready, so the
provider's rollout and Service endpoint waits would never finish. It changes nothing else.
"""

from __future__ import annotations

import json
import os
import secrets as token
import subprocess
from pathlib import Path
from typing import Any, Callable, Mapping

import pulumi
import yaml
from pulumi import automation as auto

from components.config import PROJECT

from .binaries import PulumiBinaries, find_pulumi
from .changes import StepChange, step_changes

SKIP_AWAIT = "pulumi.com/skipAwait"
WAITS_FOR_PODS = frozenset({
    "kubernetes:apps/v1:Deployment", "kubernetes:apps/v1:StatefulSet", "kubernetes:apps/v1:DaemonSet",
    "kubernetes:batch/v1:Job", "kubernetes:core/v1:Pod", "kubernetes:core/v1:Service",
})
"""Kinds whose readiness the provider awaits through running pods (rollout, Service endpoints)."""


def skip_await_transform(args: pulumi.ResourceTransformArgs) -> pulumi.ResourceTransformResult | None:
    """Mark an object whose readiness needs running pods so the provider does not wait for it."""
    if not args.custom or args.type_ not in WAITS_FOR_PODS:
        return None
    props = dict(args.props)
    metadata = dict(props.get("metadata") or {})
    metadata["annotations"] = {**(metadata.get("annotations") or {}), SKIP_AWAIT: "true"}
    props["metadata"] = metadata
    return pulumi.ResourceTransformResult(props, args.opts)


def inline_program(*, skip_await: bool, program: Callable[[], None] | None = None) -> Callable[[], None]:
    """This project's program (`components.program.run`, what `__main__.py` runs), or `program`."""

    def inline() -> None:
        if skip_await:
            pulumi.runtime.register_resource_transform(skip_await_transform)
        if program is not None:
            program()
            return
        from components.program import run

        run()

    return inline


def write_project(workdir: Path, plugins: Mapping[str, Path]) -> None:
    """The work dir's Pulumi.yaml (project `inference-gateway`, a `file://` backend in
    `workdir/state`, `plugins` as project plugins) and the state folder. A project plugin with a
    path and no version serves every version the SDK requests."""
    (workdir / "state").mkdir(parents=True, exist_ok=True)
    project = {
        "name": PROJECT,
        "runtime": "python",
        "backend": {"url": f"file://{workdir / 'state'}"},
        "plugins": {"providers": [{"name": name, "path": str(path)} for name, path in plugins.items()]},
    }
    (workdir / "Pulumi.yaml").write_text(yaml.safe_dump(project, sort_keys=False))


def _encrypted(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"secure"}


class EngineStack:
    """One stack of this project in `workdir`, run by the real engine (see the module docstring)."""

    def __init__(self, workdir: Path, stack: str, config: Mapping[str, Any], *, secrets: Mapping[str, str] | None = None,
                 skip_await: bool = False, binaries: PulumiBinaries | None = None,
                 program: Callable[[], None] | None = None, plugins: Mapping[str, Path] | None = None) -> None:
        """`program`: another inline program instead of this project's (a component consumer);
        `plugins`: more resource plugins by name -> folder holding `pulumi-resource-<name>`."""
        self.workdir = Path(workdir).resolve()
        self.name = stack
        self.binaries = binaries or find_pulumi()
        self.plugins = {"kubernetes": self.binaries.kubernetes_plugin_dir, **(plugins or {})}
        self.passphrase = token.token_urlsafe(24)
        write_project(self.workdir, self.plugins)
        self.env = {
            "PULUMI_CONFIG_PASSPHRASE": self.passphrase,
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        }
        self.stack = auto.create_or_select_stack(
            stack_name=stack,
            project_name=PROJECT,
            program=inline_program(skip_await=skip_await, program=program),
            opts=auto.LocalWorkspaceOptions(
                work_dir=str(self.workdir),
                pulumi_home=str(self.workdir / "pulumi-home"),
                pulumi_command=auto.PulumiCommand(root=str(self.binaries.root), skip_version_check=True),
                env_vars=self.env,
                secrets_provider="passphrase",
            ),
        )
        self.set_config(config, secrets or {})

    @property
    def stack_file(self) -> Path:
        return self.workdir / f"Pulumi.{self.name}.yaml"

    @property
    def state_file(self) -> Path:
        """The file backend's checkpoint for this stack (what `pulumi stack export` prints)."""
        return self.workdir / "state" / ".pulumi" / "stacks" / PROJECT / f"{self.name}.json"

    def set_config(self, config: Mapping[str, Any], secrets: Mapping[str, str]) -> None:
        """Replace the stack's plain config with `config` (a stack file's `config:` map; the
        placeholder `secure:` values of a committed file are dropped), keep the secrets set
        before, and encrypt `secrets` with the stack's passphrase."""
        document = (yaml.safe_load(self.stack_file.read_text()) if self.stack_file.exists() else None) or {}
        kept = {k: v for k, v in (document.get("config") or {}).items() if _encrypted(v)}
        document["config"] = {**{k: v for k, v in config.items() if not _encrypted(v)}, **kept}
        self.stack_file.write_text(yaml.safe_dump(document, sort_keys=False))
        for key, value in secrets.items():
            self.stack.set_config(key, auto.ConfigValue(value, secret=True))

    # ------------------------------------------------------------------ operations
    def up(self, on_output: Callable[[str], None] | None = None) -> tuple[auto.UpResult, list[StepChange]]:
        events: list[auto.EngineEvent] = []
        result = self.stack.up(on_event=events.append, on_output=on_output, color="never")
        return result, step_changes(events)

    def preview(self, on_output: Callable[[str], None] | None = None) -> tuple[auto.PreviewResult, list[StepChange]]:
        """`pulumi preview --diff`: the result (its stdout is the text diff) and the steps."""
        events: list[auto.EngineEvent] = []
        result = self.stack.preview(diff=True, on_event=events.append, on_output=on_output, color="never")
        return result, step_changes(events)

    def destroy(self, on_output: Callable[[str], None] | None = None) -> auto.DestroyResult:
        return self.stack.destroy(on_output=on_output, color="never")

    def export(self) -> dict[str, Any]:
        """`pulumi stack export`: the deployment, secrets as ciphertext. (The Automation API's
        `export_stack` passes --show-secrets, which decrypts them.)"""
        out = subprocess.run([str(self.binaries.cli), "stack", "export", "--stack", self.name], cwd=self.workdir,
                             env={**os.environ, **self.env, "PULUMI_HOME": str(self.workdir / "pulumi-home")},
                             capture_output=True, text=True, check=True, timeout=120)
        return json.loads(out.stdout)["deployment"]
