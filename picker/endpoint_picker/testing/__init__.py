"""Test doubles shipped with the package (used by tests/picker and the overhead benchmark)."""
