"""Benchmarks for the inference gateway: picker overhead and scheduling quality.

Scenarios are YAML files in `benchmarks/scenarios/`; `python -m benchmarks run all` (or
`igw bench all`) runs them and writes `benchmarks/results/`. See benchmarks/README.md.
"""
