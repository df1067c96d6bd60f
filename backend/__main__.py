"""``python -m backend <group> <command>``: the product's operator CLI.

Only a dispatcher: each command group lives in ``backend/cli/<group>.py``
and registers its own sub-commands, so adding one is a new module plus a
line in ``COMMAND_MODULES``.  Modules are imported lazily by name so one
group's heavy imports never slow down another's.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMAND_MODULES = (
    "backend.cli.audit",
    "backend.cli.community",
    "backend.cli.reconcile",
    "backend.cli.vault",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m backend", description="Discord Trade Executor operator commands.")
    groups = parser.add_subparsers(dest="group", metavar="<group>", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(groups)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args) or 0)  # every leaf command sets ``handler``; groups require one


if __name__ == "__main__":
    sys.exit(main())
