"""The real Pulumi engine (CLI built from the Go module proxy) driving the unchanged program.

- `EngineStack(workdir, stack, config, secrets=, skip_await=)`: up / preview (--diff) / destroy /
  export of one stack through the Automation API with an inline program that calls
  `components.program.run` and a local file backend (workspace.py).
- `step_changes`, `engine_changes`, `synth_changes`: what a run changes per URN, comparable with
  `igw diff` (changes.py).
- `find_pulumi()`, `PULUMI_VERSION`, `PULUMI_KUBERNETES_LABEL`, `MissingPulumi` (binaries.py).
"""

from .binaries import (
    PULUMI_KUBERNETES_LABEL,
    PULUMI_KUBERNETES_MODULE_VERSION,
    PULUMI_VERSION,
    SETUP_COMMAND,
    MissingPulumi,
    PulumiBinaries,
    find_pulumi,
)
from .changes import Change, StepChange, engine_changes, step_changes, synth_changes
from .workspace import EngineStack, skip_await_transform

__all__ = [
    "PULUMI_KUBERNETES_LABEL", "PULUMI_KUBERNETES_MODULE_VERSION", "PULUMI_VERSION", "SETUP_COMMAND", "Change",
    "EngineStack", "MissingPulumi", "PulumiBinaries", "StepChange", "engine_changes", "find_pulumi",
    "skip_await_transform", "step_changes", "synth_changes",
]
