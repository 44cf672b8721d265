"""igw subcommands: one module per command, each with `register(subparsers)`."""

COMMANDS = ["synth", "validate", "policy", "diff", "up", "down", "status", "bench"]
