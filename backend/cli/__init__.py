"""Operator commands behind ``python -m backend``; one module per command group.

A module here exposes ``register(subparsers)``, which adds its parser(s) and
sets ``handler`` (a function ``(args) -> int`` exit code) as a default.
Add the module's name to ``COMMAND_MODULES`` in ``backend/__main__.py``.
"""
