"""The Pulumi program: stack config -> StackConfig -> InferencePlatform -> stack outputs.

`__main__.py` (what `pulumi up` and `igw synth` run) is only a call to `run()`; the Automation
API's inline program (`igw/automation.py`, the real engine here) calls the same function, so
there is one program whichever way it is driven.
"""

from __future__ import annotations

import pulumi

from .config import ConfigError
from .platform import InferencePlatform
from .stack_config import load_stack_config


def run() -> InferencePlatform:
    """Read and validate the running stack's config, build the platform, export its outputs."""
    try:
        config = load_stack_config()
    except ConfigError as err:
        # RunError prints the message without a Python traceback: the YAML path says what to fix.
        raise pulumi.RunError(f"invalid stack config:\n{err}") from None
    platform = InferencePlatform(config.name_prefix, config)
    for key, value in platform.exports().items():
        pulumi.export(key, value)
    return platform
