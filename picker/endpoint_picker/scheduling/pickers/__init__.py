"""Pickers: turn scores into an ordered endpoint list (primary + fallbacks)."""
