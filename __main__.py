"""The Pulumi program (components/program.py): stack config -> StackConfig -> InferencePlatform
-> stack outputs.

`pulumi up` runs this file; `igw synth` runs it unchanged under the mock engine; the Automation
API inline program (igw/automation.py) calls the same `run()`.
"""

from components.program import run

run()
