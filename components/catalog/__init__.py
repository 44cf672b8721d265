"""Facts and naming rules shared by the stack config (which validates against them) and the
builders (which render from them): GPU machine types, runtime presets, derived names.

The catalog imports nothing else from `components`, so config -> catalog <- builders has no cycle.
"""
