"""Scorers: one module per plugin, each with a kebab-case TYPE ending in `-scorer`."""
