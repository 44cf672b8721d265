"""The Pulumi program: stack config -> StackConfig -> InferencePlatform -> stack outputs.

`pulumi up` runs this file; `igw synth` runs it unchanged under the mock engine.
"""

import pulumi

from components.config import ConfigError
from components.stack_config import load_stack_config
from components.platform import InferencePlatform

try:
    config = load_stack_config()
except ConfigError as err:
    # RunError prints the message without a Python traceback: the YAML path says what to fix.
    raise pulumi.RunError(f"invalid stack config:\n{err}") from None
platform = InferencePlatform(config.name_prefix, config)

for key, value in platform.exports().items():
    pulumi.export(key, value)
